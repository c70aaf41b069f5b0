//! Manual probe (not committed): load a model on a backend, optionally run it on raw inputs.
//! usage: tract_probe MODEL BACKEND [DIR]  (DIR/inputs.txt lines: name dtype d0,d1; DIR/NAME.in raw)
use inference::{ElementType, LoadOptions, Model, Tensor};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args[2].parse().unwrap();
    #[allow(unused_mut)]
    let mut options = LoadOptions::new(backend);
    if let Ok(spec) = std::env::var("PROBE_SHAPES") {
        let _ = &spec;
        for part in spec.split(";") { let (n, d) = part.split_once("=").unwrap(); options = options.with_input_shape(n, d.split(",").map(|x| x.parse().map(inference::Dim::Fixed).unwrap_or_else(|_| if x == "?" { inference::Dim::Unknown } else { inference::Dim::Symbolic(x.into()) })).collect()); }
    }
    let t = Instant::now();
    let model = match Model::load_file(&args[1], &options) {
        Ok(m) => m,
        Err(e) => {
            println!("LOAD FAIL: {}", inference::error_chain(&e));
            return;
        }
    };
    println!("LOAD OK in {:?}", t.elapsed());
    let Some(dir) = args.get(3) else { return };
    let manifest = std::fs::read_to_string(format!("{dir}/inputs.txt")).unwrap();
    let mut inputs = vec![];
    for line in manifest.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        let ty = ElementType::ALL.into_iter().find(|t| t.name() == parts[1]).unwrap();
        let shape: Vec<usize> = if parts[2].is_empty() { vec![] } else { parts[2].split(',').map(|d| d.parse().unwrap()).collect() };
        let raw = std::fs::read(format!("{dir}/{}.in", parts[0])).unwrap();
        inputs.push((parts[0].to_owned(), Tensor::from_le_bytes(ty, &shape, &raw).unwrap()));
    }
    let t = Instant::now();
    match model.run(inputs) {
        Ok(outs) => {
            println!("RUN OK in {:?}", t.elapsed());
            let mut manifest = String::new();
            for (i, (name, t)) in outs.iter().enumerate() {
                let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
                manifest.push_str(&format!("{name}\t{}\t{}\n", t.element_type().name(), dims.join(",")));
                std::fs::write(format!("{dir}/out{i}.{backend}", backend = args[2]), t.to_le_bytes().unwrap()).unwrap();
            }
            std::fs::write(format!("{dir}/outputs.{}.txt", args[2]), manifest).unwrap();
        }
        Err(e) => println!("RUN FAIL: {}", inference::error_chain(&e)),
    }
}
