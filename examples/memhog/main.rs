//! memhog: allocates and touches memory in 1 MiB blocks, printing how much it holds.
//!
//! `memhog [--rate MIB_PER_SEC] [--cap MIB] [--hold]`: grows by 1 MiB blocks at RATE (default
//! 10 MiB/s, 0 = as fast as possible) up to CAP MiB (default: no cap), then holds what it has
//! (sleeping) until killed. Every block is written to, so it is really resident.

use std::io::Write;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

fn main() {
    let mut rate: f64 = 10.0;
    let mut cap: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> String {
            args.next().unwrap_or_else(|| {
                eprintln!("memhog: {name} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--rate" => rate = parse(&value("--rate")),
            "--cap" => cap = Some(parse::<usize>(&value("--cap"))),
            "-h" | "--help" => {
                println!("usage: memhog [--rate MIB_PER_SEC] [--cap MIB]");
                return;
            }
            other => {
                eprintln!("memhog: unknown argument {other:?}");
                std::process::exit(2)
            }
        }
    }
    let start = Instant::now();
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let stdout = std::io::stdout();
    loop {
        if cap.is_some_and(|c| blocks.len() >= c) {
            let mut out = stdout.lock();
            let _ = writeln!(out, "memhog: holding {} MiB (cap reached)", blocks.len());
            let _ = out.flush();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let mut block = vec![0u8; MIB];
        // Touch every page so the memory is resident, not just reserved.
        for i in (0..MIB).step_by(4096) {
            block[i] = (blocks.len() & 0xff) as u8 | 1;
        }
        blocks.push(block);
        {
            let mut out = stdout.lock();
            let _ = writeln!(out, "memhog: holding {} MiB", blocks.len());
            let _ = out.flush();
        }
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(blocks.len() as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        eprintln!("memhog: not a number: {s:?}");
        std::process::exit(2)
    })
}
