// Q8_0-style dequantize-matmul out[m, n] = x[m, k] . dequant(w)^T, w int8 [n, k] packed four
// to a u32 word, one f32 scale per `block` weights along k. Same tiling as matmul.wgsl; the
// weights are dequantized while their tile is staged, so they cross memory as 8-bit values.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    block: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;

fn weight(j: u32, i: u32) -> f32 {
    let idx = j * params.k + i;
    let word = w[idx / 4u];
    let q = extractBits(bitcast<i32>(word), (idx % 4u) * 8u, 8u);
    return f32(q) * scales[j * (params.k / params.block) + i / params.block];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * 16u + lid.x;
    // One vec4 per output row, no dynamically indexed arrays: shader compilers (lavapipe's
    // especially) keep these in registers.
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    for (var k0 = 0u; k0 < params.k; k0 += TK) {
        for (var i = 0u; i < 4u; i++) {
            let e = tid + i * 256u;
            let r = e / TK;
            let c = e % TK;
            var av = 0.0;
            if row0 + r < params.m && k0 + c < params.k {
                av = x[(row0 + r) * params.k + k0 + c];
            }
            tile_a[c * TILE + r] = av;
            // Weight row (output column) r, along k: tile_b is [k][column].
            var bv = 0.0;
            if col0 + r < params.n && k0 + c < params.k {
                bv = weight(col0 + r, k0 + c);
            }
            tile_b[c * TILE + r] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let base = kk * TILE;
            let bv = vec4<f32>(
                tile_b[base + lid.x],
                tile_b[base + lid.x + 16u],
                tile_b[base + lid.x + 32u],
                tile_b[base + lid.x + 48u],
            );
            acc0 = fma(vec4<f32>(tile_a[base + lid.y]), bv, acc0);
            acc1 = fma(vec4<f32>(tile_a[base + lid.y + 16u]), bv, acc1);
            acc2 = fma(vec4<f32>(tile_a[base + lid.y + 32u]), bv, acc2);
            acc3 = fma(vec4<f32>(tile_a[base + lid.y + 48u]), bv, acc3);
        }
        workgroupBarrier();
    }
    store(row0 + lid.y, col0 + lid.x, acc0);
    store(row0 + lid.y + 16u, col0 + lid.x, acc1);
    store(row0 + lid.y + 32u, col0 + lid.x, acc2);
    store(row0 + lid.y + 48u, col0 + lid.x, acc3);
}

// Writes the four outputs of one row (columns c, c + 16, c + 32, c + 48) that fall inside.
fn store(r: u32, c: u32, v: vec4<f32>) {
    if r >= params.m { return; }
    for (var j = 0u; j < 4u; j++) {
        if c + 16u * j < params.n {
            out[r * params.n + c + 16u * j] = v[j];
        }
    }
}
