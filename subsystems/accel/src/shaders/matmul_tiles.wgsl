// The tiled matrix-product body shared by matmul.wgsl and dequant_matmul.wgsl (appended to
// each): a 16x16 workgroup computes a 64x64 output tile, 4x4 outputs per invocation; k
// advances 16 at a time through tiles staged in workgroup memory by the kernel's
// `stage(e, row0, col0, k0)`, which loads element `e` (0..1024) of both tiles, zeros at the
// edges, so any m, n, k works.

const TILE: u32 = 64u;
const TK: u32 = 16u;
// Both tiles are stored k-major ([TK][TILE]), so the inner loop reads them along rows.
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
            stage(tid + i * 256u, row0, col0, k0);
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
