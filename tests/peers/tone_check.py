#!/usr/bin/env python3
"""tone_check.py WAV FREQ MIN_SECONDS [--ratio R] [--min-dbfs D]

Counts the 20 ms windows of WAV (16-bit PCM, any rate, channels averaged) in
which FREQ dominates: Goertzel power at FREQ is at least R (default 0.5) of
the window's total energy, and the window is louder than D dBFS (default -45).
Prints "<seconds> s of <FREQ> Hz in <WAV> (...)" and exits 0 if the total is
>= MIN_SECONDS, 1 if below, 2 if the file cannot be read.
"""
import argparse, math, struct, sys, wave


def windows(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: need 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        rate, ch = w.getframerate(), w.getnchannels()
        n = rate // 50  # 20 ms
        while True:
            raw = w.readframes(n)
            if len(raw) < n * ch * 2:
                return
            s = struct.unpack(f"<{n * ch}h", raw)
            yield rate, [sum(s[i:i + ch]) / (ch * 32768.0) for i in range(0, n * ch, ch)]


def goertzel_ratio(x, rate, freq):
    """Power at freq (DTFT bin) as a fraction of the window energy; 1.0 = pure tone."""
    w = 2 * math.pi * freq / rate
    c = 2 * math.cos(w)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + c * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - c * s1 * s2
    energy = sum(v * v for v in x)
    return (2 * power / (len(x) * energy) if energy else 0.0), energy / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wav")
    ap.add_argument("freq", type=float)
    ap.add_argument("min_seconds", type=float)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--min-dbfs", type=float, default=-45.0)
    a = ap.parse_args()
    floor = 10 ** (a.min_dbfs / 10)  # mean-square threshold
    hit = total = 0
    try:
        for rate, x in windows(a.wav):
            total += 1
            r, ms = goertzel_ratio(x, rate, a.freq)
            hit += r >= a.ratio and ms >= floor
    except (OSError, EOFError, ValueError, wave.Error) as e:
        print(f"tone_check: {e}", file=sys.stderr)
        return 2
    secs = hit * 0.02
    print(f"{secs:.2f} s of {a.freq:g} Hz in {a.wav} ({hit}/{total} windows, need {a.min_seconds:g} s)")
    return 0 if secs >= a.min_seconds else 1


if __name__ == "__main__":
    sys.exit(main())
