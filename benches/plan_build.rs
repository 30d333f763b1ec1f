//! Where the plan build (cold start) goes, and whether a pre-decluttered NNEF model (tract's own
//! format, with its ONNX extensions) embedded instead of the ONNX file would build faster and stay
//! exact: once with the folded float weights, once with the weights back in int8 and a scale per
//! output channel (turned back into float weights as the archive is read). The three routes run interleaved
//! in one process on the embedded model, each to the plan the binary runs (`tract::plan`: declutter,
//! the resize rewrites, optimize); medians of each stage, the ratios to the ONNX route, each archive's
//! size, and the largest output difference on a real photo.
//!
//!     cargo bench --bench plan_build

use std::io::Cursor;
use std::time::{Duration, Instant};

use object_detector::core::embedded;
use object_detector::core::engine::{f32_values, tract};
use object_detector::core::image_decode::decode;
use object_detector::{DecodeLimits, Detector};
use tract_nnef::internal::*;
use tract_onnx::prelude::InferenceModelExt;
use tract_onnx::tract_core::ops::cast::cast;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::math::mul;
use tract_onnx::WithOnnx;

const RUNS: usize = 15;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// `w` as integers in i8 range times one f32 scale per slice along axis 0, when that reproduces every
/// value bit for bit (`q as f32 * scale`, what the cast and the multiplication compute at load);
/// `None` otherwise. The weight fold wrote `(q - zero) as f32 * scale` per output channel, so the
/// scale is `max |w| / max |q|`, up to the rounding of that division: the neighbouring floats are tried.
fn as_int8(w: &Tensor) -> Option<(Tensor, Tensor)> {
    let shape = w.shape();
    let channels = shape[0];
    let values = w.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?;
    let inner = values.len() / channels.max(1);
    let mut q = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(channels);
    for slice in values.chunks(inner.max(1)) {
        let max = slice.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max == 0.0 {
            q.extend(std::iter::repeat_n(0i8, slice.len()));
            scales.push(1f32);
            continue;
        }
        let exact = |s: f32| {
            slice.iter().all(|&v| {
                let k = (v / s).round();
                k.abs() <= 127.0 && k * s == v
            })
        };
        let scale = (1..=127u8).rev().find_map(|top| {
            let s = max / f32::from(top);
            [s, s.next_down(), s.next_up()]
                .into_iter()
                .find(|&s| exact(s))
        })?;
        q.extend(slice.iter().map(|&v| (v / scale).round() as i8));
        scales.push(scale);
    }
    let mut scale_shape = vec![1; shape.len()];
    scale_shape[0] = channels;
    Some((
        tract_ndarray::ArrayD::from_shape_vec(shape, q).ok()?.into(),
        tract_ndarray::ArrayD::from_shape_vec(scale_shape, scales)
            .ok()?
            .into(),
    ))
}

/// Int8 weights and their per-channel scales to float: `q as f32 * scale`. Exists only while the
/// archive is written: tract's NNEF writer folds constant subgraphs back into one float constant
/// (`prop_consts`), and this operator is not folded out of a plan (`not_out_of_plan`). Reading the
/// archive turns it back into the float weights (`int8_weights_registry`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Int8Weights;

impl Op for Int8Weights {
    fn name(&self) -> StaticName {
        "Int8Weights".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Int8Weights {
    not_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (q, scale) = args_2!(inputs);
        let f = q.cast_to::<f32>()?.into_owned().into_tvalue();
        mul().eval(ctx, tvec!(f, scale))
    }
}

impl TypedOp for Int8Weights {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// `q as f32 * scale`, one scale per slice along axis 0.
fn dequantize(q: &Tensor, scale: &Tensor) -> TractResult<Tensor> {
    let values = q.try_as_plain_ram()?;
    let values = values.as_slice::<i8>()?;
    let scales = scale.try_as_plain_ram()?;
    let scales = scales.as_slice::<f32>()?;
    ensure!(!scales.is_empty() && values.len() % scales.len() == 0);
    let inner = values.len() / scales.len();
    let mut w = vec![0f32; values.len()];
    for ((out, slice), &s) in w
        .chunks_mut(inner.max(1))
        .zip(values.chunks(inner.max(1)))
        .zip(scales)
    {
        for (o, &v) in out.iter_mut().zip(slice) {
            *o = f32::from(v) * s;
        }
    }
    Ok(tract_ndarray::ArrayD::from_shape_vec(q.shape(), w)?.into())
}

/// The NNEF registry that writes [`Int8Weights`] as `object_detector_int8_weights(q, scale)` and reads
/// it back as a float constant (`dequantize`), or as tract's cast and multiplication when its inputs
/// are not constants.
fn int8_weights_registry() -> Registry {
    let mut registry = Registry::new("object_detector");
    registry.register_dumper::<Int8Weights>(|ast, node, _| {
        let (q, scale) = (
            ast.mapping[&node.inputs[0]].clone(),
            ast.mapping[&node.inputs[1]].clone(),
        );
        Ok(Some(invocation(
            "object_detector_int8_weights",
            &[q, scale],
            &[],
        )))
    });
    registry.register_primitive(
        "object_detector_int8_weights",
        &[
            TypeName::Integer.tensor().named("q"),
            TypeName::Scalar.tensor().named("scale"),
        ],
        &[("output", TypeName::Scalar.tensor())],
        |builder, invocation| {
            let q: OutletId = invocation.named_arg_as(builder, "q")?;
            let scale: OutletId = invocation.named_arg_as(builder, "scale")?;
            let konst = |o: OutletId| builder.model.outlet_fact(o).ok()?.konst.clone();
            if let (Some(q), Some(scale)) = (konst(q), konst(scale)) {
                // Both read from the archive: the float weights straight away, one multiplication
                // each, rather than a cast and a broadcast multiplication for the plan build to fold.
                return Ok(Value::from(tvec!(
                    builder.add_const(dequantize(&q, &scale)?)?
                )));
            }
            let f = builder.wire_as_outlets(cast(f32::datum_type()), &[q])?;
            builder.wire(mul(), &[f[0], scale])
        },
    );
    registry
}

/// `model` with each float constant that `as_int8` can hold exactly replaced by its int8 values, a cast
/// and its scales ([`Int8Weights`]); how many were replaced.
fn int8_weights(mut model: TypedModel) -> TractResult<(TypedModel, usize)> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(konst) = node.op_as::<Const>() else {
            continue;
        };
        let w = konst.val();
        if w.datum_type() != f32::datum_type() || w.rank() < 2 || w.len() < 256 {
            continue;
        }
        let Some((q, scales)) = as_int8(w) else {
            continue;
        };
        let name = node.name.clone();
        let mut patch = TypedModelPatch::default();
        let q = patch.add_const(format!("{name}.q"), q)?;
        let s = patch.add_const(format!("{name}.scale"), scales)?;
        let w = patch.wire_node(format!("{name}.dequantized"), Int8Weights, &[q, s])?[0];
        patch.shunt_outside(&model, OutletId::new(id, 0), w)?;
        patch.apply(&mut model)?;
        count += 1;
    }
    Ok((model.into_compact()?, count))
}

fn main() {
    let detector = Detector::embedded().unwrap();
    let shape = detector.preprocessor().input_shape();
    let input_name = detector.manifest().input.name.as_deref();
    let nnef = tract_nnef::nnef()
        .with_onnx()
        .with_registry(int8_weights_registry());

    // The engine's own first step: parse, fold the int8 weights, build the graph, fix the input.
    let inference_model =
        || tract::inference_model(embedded::MODEL, input_name, &shape, 1).unwrap();
    // The NNEF archives: the ONNX route up to the decluttered typed model, serialized once, with the
    // float weights and with int8 ones.
    let decluttered = inference_model()
        .into_typed()
        .unwrap()
        .into_decluttered()
        .unwrap();
    let mut float_archive = Vec::new();
    nnef.write_to_tar(&decluttered, &mut float_archive).unwrap();
    let (quantized, replaced) = int8_weights(decluttered.clone()).unwrap();
    let mut int8_archive = Vec::new();
    nnef.write_to_tar(&quantized, &mut int8_archive).unwrap();

    let onnx_route = || {
        let t0 = Instant::now();
        let model = inference_model();
        let t1 = Instant::now();
        let typed = model.into_typed().unwrap();
        let t2 = Instant::now();
        let plan = tract::plan(typed, tract::Rewrites::default()).unwrap();
        let t3 = Instant::now();
        (plan, [t1 - t0, t2 - t1, t3 - t2, t3 - t0])
    };
    let nnef_route = |archive: &[u8]| {
        let t0 = Instant::now();
        let model = nnef.model_for_read(&mut Cursor::new(archive)).unwrap();
        let t1 = Instant::now();
        let plan = tract::plan(model, tract::Rewrites::default()).unwrap();
        let t2 = Instant::now();
        (plan, [t1 - t0, t2 - t1, t2 - t0])
    };

    let mut onnx_times: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    let mut float_times: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    let mut int8_times: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    let mut plans = (None, None, None);
    for _ in 0..RUNS {
        let (plan, t) = onnx_route();
        t.iter().zip(&mut onnx_times).for_each(|(d, v)| v.push(*d));
        plans.0 = Some(plan);
        let (plan, t) = nnef_route(&float_archive);
        t.iter().zip(&mut float_times).for_each(|(d, v)| v.push(*d));
        plans.1 = Some(plan);
        let (plan, t) = nnef_route(&int8_archive);
        t.iter().zip(&mut int8_times).for_each(|(d, v)| v.push(*d));
        plans.2 = Some(plan);
    }
    let onnx_ms: Vec<f64> = onnx_times.into_iter().map(median).collect();
    let float_ms: Vec<f64> = float_times.into_iter().map(median).collect();
    let int8_ms: Vec<f64> = int8_times.into_iter().map(median).collect();

    // Same photo through the three plans: the outputs must agree with the ONNX route's.
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/images/coffee.jpg"
    ))
    .unwrap();
    let rgb = decode(&bytes, &DecodeLimits::default()).unwrap().rgb;
    let (input, _) = detector.preprocess(&rgb).unwrap();
    let run = |plan: Option<tract::Plan>| plan.unwrap().run(tvec!(input.clone().into())).unwrap();
    let reference = run(plans.0);
    let max_diff = |outputs: TVec<TValue>| {
        let mut max = 0f32;
        for (x, y) in reference.iter().zip(outputs.iter()) {
            let (x, y) = (f32_values(x).unwrap(), f32_values(y).unwrap());
            assert_eq!(x.len(), y.len());
            for (p, q) in x.iter().zip(y.iter()) {
                max = max.max((p - q).abs());
            }
        }
        max
    };
    let (float_diff, int8_diff) = (max_diff(run(plans.1)), max_diff(run(plans.2)));

    println!("plan build of the embedded model, median of {RUNS} runs each, interleaved (ms)");
    println!(
        "  ONNX route (what the binary does; ONNX file {} bytes)",
        embedded::MODEL.len()
    );
    for (name, v) in [
        "parse protobuf + fold weights + to graph",
        "type inference (into_typed)",
        "declutter + rewrites + optimize + plan",
        "total",
    ]
    .iter()
    .zip(&onnx_ms)
    {
        println!("    {name:<44} {v:>8.1}");
    }
    for (label, archive, ms, diff) in [
        (
            "NNEF, float weights".to_string(),
            &float_archive,
            &float_ms,
            float_diff,
        ),
        (
            format!("NNEF, int8 weights ({replaced} constants)"),
            &int8_archive,
            &int8_ms,
            int8_diff,
        ),
    ] {
        println!("  {label}: {} bytes as an uncompressed tar", archive.len());
        for (name, v) in [
            "read tar + to typed graph",
            "declutter + rewrites + optimize + plan",
            "total",
        ]
        .iter()
        .zip(ms)
        {
            println!("    {name:<44} {v:>8.1}");
        }
        println!(
            "    ratio to the ONNX route, total: {:.3}; largest output difference on coffee.jpg: {diff:e}",
            ms[2] / onnx_ms[3]
        );
    }
}
