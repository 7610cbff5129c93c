//! `accel/*` load scenarios: SAXPY (GB/s) and SGEMM (GFLOP/s) on the wgpu adapter, with the
//! upload and download times reported apart from the kernel time, side by side with candle's
//! CPU kernels and the accelerator's own CPU back end on the same data.
//!
//! Each subject runs a warm-up on small inputs first (so pipeline compilation is not timed),
//! then `reps` timed runs on resident data; `value` is the median run, bounds the fastest and
//! slowest. Quick mode keeps the sizes (the ids name them) and cuts repetitions, except
//! SAXPY, which drops from 16 Mi to 4 Mi elements.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_accel::{HardwareAccelerator, Kernel, Preference, Tensor};

use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::error::ScenarioError;

const SEED: u64 = 0x6163_6365_6c5f_6770;
/// Sampled output elements checked against candle (a wrong kernel is a failure, not a figure).
const CHECKED: usize = 256;

/// Runs the `accel/*` load scenarios named in `ids`.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    let gpu = match HardwareAccelerator::with_preference_blocking(Preference::Gpu) {
        Ok(acc) => acc,
        Err(e) => {
            for id in ids {
                outcome
                    .skipped
                    .push(((*id).to_owned(), format!("requires gpu: {e}")));
            }
            return Ok(());
        }
    };
    if let Some(a) = &gpu.capabilities().adapter {
        let kind = if a.software { ", software adapter" } else { "" };
        eprintln!(
            "accel: adapter {} ({}, {}{kind})",
            a.summary.name, a.summary.driver, a.summary.backend
        );
    }
    let cpu = HardwareAccelerator::cpu();
    for &id in ids {
        let (work, reps) = match id {
            "accel/saxpy/f32" => {
                let n = if opts.quick { 4 << 20 } else { 16 << 20 };
                (Work::Saxpy { n }, if opts.quick { 3 } else { 10 })
            }
            "accel/sgemm/n1024" => (Work::Sgemm { n: 1024 }, if opts.quick { 2 } else { 5 }),
            "accel/sgemm/n2048" => (Work::Sgemm { n: 2048 }, if opts.quick { 1 } else { 3 }),
            _ => continue,
        };
        let inputs = work.inputs();
        let reference = candle(work, &inputs, reps);
        let reference = match reference {
            Ok((measures, out)) => {
                outcome.record(id, "candle_cpu", Ok(measures));
                Some(out)
            }
            Err(e) => {
                outcome.record(id, "candle_cpu", Err(e));
                None
            }
        };
        let check = |out: &[f32]| match &reference {
            Some(r) => agree(out, r),
            None => Ok(()),
        };
        outcome.record(
            id,
            "perflab",
            accel(&gpu, work, &inputs, reps, true, &check),
        );
        outcome.record(
            id,
            "perflab_cpu",
            accel(&cpu, work, &inputs, reps, false, &check),
        );
    }
    Ok(())
}

/// What one scenario computes.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// `alpha * x + y` over `n` elements.
    Saxpy { n: usize },
    /// `n x n` by `n x n`.
    Sgemm { n: usize },
}

const ALPHA: f32 = 1.5;

impl Work {
    fn inputs(self) -> [Tensor; 2] {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
        let shape = self.shape();
        let n: usize = shape.iter().product();
        let mut t = || {
            let v = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            Tensor::from_f32(&shape, v).expect("shape and data agree")
        };
        [t(), t()]
    }

    fn shape(self) -> Vec<usize> {
        match self {
            Self::Saxpy { n } => vec![n],
            Self::Sgemm { n } => vec![n, n],
        }
    }

    fn kernel(self) -> Kernel {
        match self {
            Self::Saxpy { .. } => Kernel::Axpy { alpha: ALPHA },
            Self::Sgemm { .. } => Kernel::MatMul,
        }
    }

    /// The headline measure of a run of `t`: SAXPY bytes moved per second (two reads and a
    /// write of 4 bytes per element, STREAM-style), SGEMM `2n³` FLOP per second / 1e9.
    fn rate(self, t: Duration) -> (&'static str, f64) {
        let s = t.as_secs_f64().max(1e-9);
        match self {
            Self::Saxpy { n } => ("bandwidth", 12.0 * n as f64 / s),
            Self::Sgemm { n } => ("gflops", 2.0 * (n as f64).powi(3) / s / 1e9),
        }
    }

    /// Small inputs of the same kind, to compile pipelines and warm caches untimed.
    fn warm_up(self) -> Self {
        match self {
            Self::Saxpy { .. } => Self::Saxpy { n: 4096 },
            Self::Sgemm { .. } => Self::Sgemm { n: 64 },
        }
    }
}

/// Median, fastest and slowest of the timed runs, and the rate at each.
fn summarize(work: Work, times: &mut [Duration], m: &mut BTreeMap<String, Measure>) {
    times.sort();
    let ns = |d: Duration| d.as_nanos() as f64;
    let (lo, mid, hi) = (times[0], times[times.len() / 2], times[times.len() - 1]);
    m.insert(
        "kernel_time".to_owned(),
        Measure::bounded((ns(mid), ns(lo), ns(hi))),
    );
    let (name, rate) = work.rate(mid);
    m.insert(
        name.to_owned(),
        Measure::bounded((rate, work.rate(hi).1, work.rate(lo).1)),
    );
}

fn accel(
    acc: &HardwareAccelerator,
    work: Work,
    inputs: &[Tensor; 2],
    reps: usize,
    transfers: bool,
    check: &dyn Fn(&[f32]) -> Result<(), String>,
) -> Result<BTreeMap<String, Measure>, String> {
    let kernel = work.kernel();
    let warm = work.warm_up().inputs();
    acc.execute_kernel_blocking(&kernel, &[&warm[0], &warm[1]])
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let x = acc.upload(&inputs[0]).map_err(|e| e.to_string())?;
    let y = acc.upload(&inputs[1]).map_err(|e| e.to_string())?;
    let upload = start.elapsed();
    let mut times = Vec::with_capacity(reps);
    let mut out = None;
    for _ in 0..reps {
        let start = Instant::now();
        let o = acc.run(&kernel, &[&x, &y]).map_err(|e| e.to_string())?;
        times.push(start.elapsed());
        out = Some(o);
    }
    let out = out.ok_or("no repetitions")?;
    let start = Instant::now();
    let host = acc.download(&out).map_err(|e| e.to_string())?;
    let download = start.elapsed();
    check(host.as_f32().unwrap_or_default())?;
    let mut m = BTreeMap::new();
    summarize(work, &mut times, &mut m);
    if transfers {
        m.insert(
            "upload_time".to_owned(),
            Measure::point(upload.as_nanos() as f64),
        );
        m.insert(
            "download_time".to_owned(),
            Measure::point(download.as_nanos() as f64),
        );
    }
    Ok(m)
}

type CandleRun = (BTreeMap<String, Measure>, Vec<f32>);

fn candle(work: Work, inputs: &[Tensor; 2], reps: usize) -> Result<CandleRun, String> {
    use candle_core::{Device, Tensor as CTensor};
    let err = |e: candle_core::Error| e.to_string();
    let to_candle =
        |t: &Tensor| CTensor::from_slice(t.as_f32().unwrap_or_default(), t.shape(), &Device::Cpu);
    let compute = |x: &CTensor, y: &CTensor| match work {
        Work::Saxpy { .. } => x.affine(f64::from(ALPHA), 0.0)?.add(y),
        Work::Sgemm { .. } => x.matmul(y),
    };
    let warm = work.warm_up().inputs();
    compute(
        &to_candle(&warm[0]).map_err(err)?,
        &to_candle(&warm[1]).map_err(err)?,
    )
    .map_err(err)?;
    let (x, y) = (
        to_candle(&inputs[0]).map_err(err)?,
        to_candle(&inputs[1]).map_err(err)?,
    );
    let mut times = Vec::with_capacity(reps);
    let mut out = None;
    for _ in 0..reps {
        let start = Instant::now();
        let o = compute(&x, &y).map_err(err)?;
        times.push(start.elapsed());
        out = Some(o);
    }
    let out = out.ok_or("no repetitions")?;
    let flat = out
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(err)?;
    let mut m = BTreeMap::new();
    summarize(work, &mut times, &mut m);
    Ok((m, flat))
}

/// Sampled elements of `out` within 1e-3 (relative, floored at 1) of candle's.
fn agree(out: &[f32], reference: &[f32]) -> Result<(), String> {
    if out.len() != reference.len() {
        return Err(format!(
            "output has {} elements, candle's {}",
            out.len(),
            reference.len()
        ));
    }
    let step = (out.len() / CHECKED).max(1);
    for i in (0..out.len()).step_by(step) {
        let (a, b) = (out[i], reference[i]);
        // Written so that a NaN output fails too.
        let close = (a - b).abs() <= 1e-3 * b.abs().max(1.0);
        if !close {
            return Err(format!("element {i}: {a} against candle's {b}"));
        }
    }
    Ok(())
}
