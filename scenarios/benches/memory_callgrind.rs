//! Gungraun (callgrind) instruction counts of one warm pool cycle per subject and size.
//!
//! Naming (read by the harness): group = scenario name, function = subject, bench id = size
//! param, so `memory_callgrind::pool_cycle_ir::opool::kib16` is `memory/pool_cycle_ir/kib16`
//! of subject `opool`. Setup builds the pool and runs one cycle so the measured cycle reuses
//! a buffer; setup and the drop of the returned pool are not measured.
#![expect(
    unused_qualifications,
    reason = "gungraun's #[bench::id(..)] expansion qualifies paths the workspace lint flags"
)]

mod subjects;

use std::hint::black_box;

use gungraun::{library_benchmark, library_benchmark_group, main};
use subjects::{
    MemoryPool, OPool, ObjectPool, SlabPool, object_pool_cycle, object_pool_pool, opool_cycle,
    opool_pool, perflab_cycle, perflab_pool, slab_cycle, slab_pool, vec_cycle,
};

fn setup_perflab(size: usize) -> (MemoryPool<Vec<u8>>, usize) {
    let pool = perflab_pool();
    perflab_cycle(&pool, size);
    (pool, size)
}

fn setup_opool(size: usize) -> (OPool, usize) {
    let pool = opool_pool(size);
    opool_cycle(&pool, size);
    (pool, size)
}

fn setup_object_pool(size: usize) -> (ObjectPool, usize) {
    let pool = object_pool_pool();
    object_pool_cycle(&pool, size);
    (pool, size)
}

fn setup_sharded_slab(size: usize) -> (SlabPool, usize) {
    let pool = slab_pool();
    slab_cycle(&pool, size);
    (pool, size)
}

#[library_benchmark]
#[bench::b64(args = (64), setup = setup_perflab)]
#[bench::kib1(args = (1024), setup = setup_perflab)]
#[bench::kib16(args = (16 * 1024), setup = setup_perflab)]
#[bench::kib256(args = (256 * 1024), setup = setup_perflab)]
fn perflab((pool, size): (MemoryPool<Vec<u8>>, usize)) -> MemoryPool<Vec<u8>> {
    perflab_cycle(&pool, black_box(size));
    pool
}

#[library_benchmark]
#[bench::b64(args = (64), setup = setup_opool)]
#[bench::kib1(args = (1024), setup = setup_opool)]
#[bench::kib16(args = (16 * 1024), setup = setup_opool)]
#[bench::kib256(args = (256 * 1024), setup = setup_opool)]
fn opool((pool, size): (OPool, usize)) -> OPool {
    opool_cycle(&pool, black_box(size));
    pool
}

#[library_benchmark]
#[bench::b64(args = (64), setup = setup_object_pool)]
#[bench::kib1(args = (1024), setup = setup_object_pool)]
#[bench::kib16(args = (16 * 1024), setup = setup_object_pool)]
#[bench::kib256(args = (256 * 1024), setup = setup_object_pool)]
fn object_pool((pool, size): (ObjectPool, usize)) -> ObjectPool {
    object_pool_cycle(&pool, black_box(size));
    pool
}

#[library_benchmark]
#[bench::b64(args = (64), setup = setup_sharded_slab)]
#[bench::kib1(args = (1024), setup = setup_sharded_slab)]
#[bench::kib16(args = (16 * 1024), setup = setup_sharded_slab)]
#[bench::kib256(args = (256 * 1024), setup = setup_sharded_slab)]
fn sharded_slab((pool, size): (SlabPool, usize)) -> SlabPool {
    slab_cycle(&pool, black_box(size));
    pool
}

fn setup_vec(size: usize) -> usize {
    // One cycle first, so the allocator is as warm as the pools (a freed chunk of this size
    // is in its thread cache).
    vec_cycle(size);
    size
}

#[library_benchmark]
#[bench::b64(args = (64), setup = setup_vec)]
#[bench::kib1(args = (1024), setup = setup_vec)]
#[bench::kib16(args = (16 * 1024), setup = setup_vec)]
#[bench::kib256(args = (256 * 1024), setup = setup_vec)]
fn vec(size: usize) {
    vec_cycle(black_box(size));
}

library_benchmark_group!(
    name = pool_cycle_ir,
    benchmarks = [perflab, opool, object_pool, sharded_slab, vec]
);
main!(library_benchmark_groups = pool_cycle_ir);
