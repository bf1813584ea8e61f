//! The Argon2id limit of `bench/run.sh`: raw hashes per second on every core at the given
//! parameters, with nothing of Valet around the hash (no pool, no runtime, no HTTP), so the
//! password grant's rate can be read as a fraction of what the CPU can do at all.
//!
//! Usage: argon2_rate MEMORY_KIB ITERATIONS PARALLELISM SECONDS THREADS
//! Prints: hashes/s over all threads.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let [memory_kib, iterations, parallelism, seconds, threads] = args[..] else {
        panic!("usage: argon2_rate MEMORY_KIB ITERATIONS PARALLELISM SECONDS THREADS");
    };
    let params = Params::new(
        memory_kib as u32,
        iterations as u32,
        parallelism as u32,
        Some(32),
    )
    .expect("valid Argon2 parameters");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let hashes: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let params = params.clone();
                scope.spawn(move || {
                    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                    let mut out = [0u8; 32];
                    let mut count = 0u64;
                    while Instant::now() < deadline {
                        argon2
                            .hash_password_into(b"correct horse", b"sixteen byte salt", &mut out)
                            .expect("hashing");
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    println!("{:.1}", hashes as f64 / started.elapsed().as_secs_f64());
}
