// Fills a buffer with one 32-bit pattern (NaN for output poisoning).

struct Params {
    len: u32,
    row_stride: u32,
    bits: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.row_stride;
    if i < params.len {
        out[i] = params.bits;
    }
}
