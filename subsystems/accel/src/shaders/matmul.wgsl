// Tiled matrix product out[m, n] = a[m, k] x b[k, n]; the tiling is in matmul_tiles.wgsl,
// appended to this file.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Stages element `e` of both tiles: a as 64 rows x 16 k read along k, b as 16 k x 64
// columns read along columns (each read follows its matrix's row-major layout).
fn stage(e: u32, row0: u32, col0: u32, k0: u32) {
    let ar = e / TK;
    let ac = e % TK;
    var av = 0.0;
    if row0 + ar < params.m && k0 + ac < params.k {
        av = a[(row0 + ar) * params.k + k0 + ac];
    }
    tile_a[ac * TILE + ar] = av;
    let br = e / TILE;
    let bc = e % TILE;
    var bv = 0.0;
    if k0 + br < params.k && col0 + bc < params.n {
        bv = b[(k0 + br) * params.n + col0 + bc];
    }
    tile_b[br * TILE + bc] = bv;
}
