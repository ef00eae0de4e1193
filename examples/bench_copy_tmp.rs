// Throwaway measurement harness; delete before finishing.
use drconsole::bench::{BenchCopyArgs, bench_copy};
use drconsole::engine::copy::CopyMode;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let args = BenchCopyArgs {
        size_mib: a.get(1).map_or(1024, |s| s.parse().unwrap()),
        mode: CopyMode::parse(a.get(2).map_or("mirror", |s| s.as_str())).unwrap(),
        write_iops: a.get(3).map_or(0, |s| s.parse().unwrap()),
        dir: None,
    };
    match bench_copy(&args) {
        Ok(r) => println!("{}", serde_json::to_string(&r).unwrap()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}
