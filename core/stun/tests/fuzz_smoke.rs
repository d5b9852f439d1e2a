//! The `stun` fuzz target's properties (`fuzz/src/stun.rs`, included by path) on stable, without
//! cargo-fuzz: on the committed seeds and on every truncation and single-bit flip of each, so a
//! regression in the STUN/TURN code that breaks them fails the test suite, not only a fuzz run.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "../../../fuzz/src/stun.rs"]
mod stun;

fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/stun");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 4, "the stun seeds are missing");
    seeds
}

#[test]
fn the_stun_properties_hold_on_the_seeds_their_truncations_and_bit_flips() {
    let mut runs = 0;
    for seed in seeds() {
        for len in 0..=seed.len() {
            stun::check_stun(&seed[..len]);
            runs += 1;
        }
        for bit in 0..seed.len() * 8 {
            let mut flipped = seed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            stun::check_stun(&flipped);
            runs += 1;
        }
    }
    assert!(runs > 1000, "{runs} runs");
}
