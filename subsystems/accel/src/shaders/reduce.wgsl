// Row reductions and softmax over the last axis: one workgroup of 256 invocations per row,
// each folding a strided slice of the row, then a tree in workgroup memory.
// OP: 0 sum, 1 mean, 2 max, 3 min, 8 softmax.

override OP: u32 = 0u;

struct Params {
    rows: u32,
    cols: u32,
    // Workgroups per dispatch row: many rows use a 2-D grid.
    groups_x: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;
var<workgroup> scratch: array<f32, 256>;

fn combine(op: u32, x: f32, y: f32) -> f32 {
    if op == 2u { return max(x, y); }
    if op == 3u { return min(x, y); }
    return x + y;
}

fn identity(op: u32) -> f32 {
    if op == 2u { return -3.4028235e38; }
    if op == 3u { return 3.4028235e38; }
    return 0.0;
}

// Folds the row with `op` (after subtracting `shift` and exponentiating when `exp_of` is set)
// and leaves the result in scratch[0]. Uniform control flow: every invocation calls it.
fn fold_row(base: u32, lid: u32, op: u32, exp_of: bool, shift: f32) -> f32 {
    var acc = identity(op);
    for (var c = lid; c < params.cols; c += WG) {
        var v = input[base + c];
        if exp_of { v = exp(v - shift); }
        acc = combine(op, acc, v);
    }
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if lid < s {
            scratch[lid] = combine(op, scratch[lid], scratch[lid + s]);
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * params.groups_x;
    // `row` is uniform across the workgroup, so this early exit keeps barriers uniform.
    if row >= params.rows { return; }
    let base = row * params.cols;
    if OP == 8u {
        let m = fold_row(base, lid, 2u, false, 0.0);
        let sum = fold_row(base, lid, 0u, true, m);
        for (var c = lid; c < params.cols; c += WG) {
            out[base + c] = exp(input[base + c] - m) / sum;
        }
        return;
    }
    var r = fold_row(base, lid, OP, false, 0.0);
    if OP == 1u { r = r / f32(params.cols); }
    if lid == 0u { out[row] = r; }
}
