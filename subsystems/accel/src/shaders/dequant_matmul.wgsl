// Q8_0-style dequantize-matmul out[m, n] = x[m, k] . dequant(w)^T, w int8 [n, k] packed four
// to a u32 word, one f32 scale per `block` weights along k. The tiling is in
// matmul_tiles.wgsl, appended to this file; the weights are dequantized while their tile is
// staged, so they cross memory as 8-bit values.

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

fn weight(j: u32, i: u32) -> f32 {
    let idx = j * params.k + i;
    let word = w[idx / 4u];
    let q = extractBits(bitcast<i32>(word), (idx % 4u) * 8u, 8u);
    return f32(q) * scales[j * (params.k / params.block) + i / params.block];
}

// Stages element `e` of both tiles: x as 64 rows x 16 k read along k, and weight row
// (output column) r along k, dequantized, into tile_b's [k][column] layout.
fn stage(e: u32, row0: u32, col0: u32, k0: u32) {
    let r = e / TK;
    let c = e % TK;
    var av = 0.0;
    if row0 + r < params.m && k0 + c < params.k {
        av = x[(row0 + r) * params.k + k0 + c];
    }
    tile_a[c * TILE + r] = av;
    var bv = 0.0;
    if col0 + r < params.n && k0 + c < params.k {
        bv = weight(col0 + r, k0 + c);
    }
    tile_b[c * TILE + r] = bv;
}
