import os, statistics, sys, time
d = sys.argv[1]; n = int(sys.argv[2])
rec = b"x" * 511 + b"\n"
def run(f):
    t = []
    for _ in range(n):
        s = time.perf_counter(); f(); t.append(time.perf_counter() - s)
    t.sort()
    return statistics.median(t) * 1e6, t[int(0.99 * len(t))] * 1e6
fd = os.open(os.path.join(d, "journal"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def append():
    os.write(fd, rec); os.fdatasync(fd)
dfd = os.open(d, os.O_RDONLY)
def replace():
    p = os.path.join(d, "state.tmp")
    f = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(f, rec); os.fsync(f); os.close(f)
    os.rename(p, os.path.join(d, "state")); os.fsync(dfd)
for name, f in [("append 512 B + fdatasync", append), ("atomic replace (write, fsync, rename, fsync dir)", replace)]:
    med, p99 = run(f)
    print(f"{name}: median {med:.0f} us, p99 {p99:.0f} us, {1e6/med:.0f}/s serial")
