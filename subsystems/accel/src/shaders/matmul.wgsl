// Tiled matrix product out[m, n] = a[m, k] x b[k, n]. A 16x16 workgroup computes a 64x64
// output tile, 4x4 outputs per invocation; k advances 16 at a time through tiles of a and b
// staged in workgroup memory. Edge tiles load zeros, so any m, n, k works.

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

const TILE: u32 = 64u;
const TK: u32 = 16u;
// a's tile stored k-major ([TK][TILE]), so the inner loop reads both tiles along rows.
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;

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
            // a: 64 rows x 16 k, read along k.
            let ar = e / TK;
            let ac = e % TK;
            var av = 0.0;
            if row0 + ar < params.m && k0 + ac < params.k {
                av = a[(row0 + ar) * params.k + k0 + ac];
            }
            tile_a[ac * TILE + ar] = av;
            // b: 16 k x 64 columns, read along columns.
            let br = e / TILE;
            let bc = e % TILE;
            var bv = 0.0;
            if k0 + br < params.k && col0 + bc < params.n {
                bv = b[(k0 + br) * params.n + col0 + bc];
            }
            tile_b[br * TILE + bc] = bv;
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
