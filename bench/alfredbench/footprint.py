"""Section 6, footprint (issue 10): what our alfred costs a router, next to
Debian's. Benchmark rows, not tests; targets from the issue.

* binary: the stripped MinSizeRel `alfred` against Debian's
  /usr/sbin/alfred. Ours is built by this section in build-minsize/
  (`cmake -DCMAKE_BUILD_TYPE=MinSizeRel -DALFRED_WERROR=ON`, target
  `installables`; incremental when the directory exists; --footprint-build)
  and stripped as dh_strip strips a package's programs
  (`strip --remove-section=.comment --remove-section=.note`). Debian's is
  stripped that way in its package. Target: at most 200 KB (204,800 bytes).
* idle RSS: each daemon alone in a 1-node lab (mesh0 on a veth, nobody
  else on the link), `-i mesh0 -b none -p 10` (alfred's default period),
  as a primary (`-m`) and as a secondary; all of them at the same time.
  VmRSS (and its anonymous / file-backed parts) --footprint-idle seconds
  (default 15) after the daemon's socket answered. Ours twice: the stripped
  MinSizeRel binary and the benchmark's --ours. Target: at most 1.5x
  Debian's.
* installed size: Debian's package Installed-Size (dpkg-query while
  Debian's alfred is installed, else the .deb in apt's cache, else
  `apt-get download alfred`), next to ours computed from
  `cmake --install --strip` of the MinSizeRel build into a DESTDIR, plus the
  files dh adds (debian/copyright, changelog.Debian.gz, README.Debian, the
  lintian overrides), man pages and documentation over 4 KiB gzip -9n'd as
  dh_compress does, counted as dpkg-gencontrol counts Installed-Size (each
  file's size in KiB rounded up, 1 KiB per directory). With --footprint-deb
  also the Installed-Size of the real package alfred-tcp, built by
  dpkg-buildpackage -b (Debian's build flags, nocheck) from a copy of the
  tree, and the size of the alfred in it. Reported, no target.
"""

from __future__ import annotations

import glob
import gzip
import math
import os
import shutil
import subprocess
import tempfile
import time

from .common import ROOT, daemon_pid, fmt, fmt_ratio, log, new_lab, proc_mem_kb, ratio, table

BINARY_TARGET = 200 * 1024   # bytes
RSS_TARGET = 1.5             # x Debian's
DH_STRIP = ["strip", "--remove-section=.comment", "--remove-section=.note"]
# what debian/rules gives CMake (dh_auto_configure adds the prefix and sysconfdir)
INSTALL_LAYOUT = ["-DCMAKE_INSTALL_PREFIX=/usr", "-DCMAKE_INSTALL_SYSCONFDIR=/etc",
                  "-DCMAKE_INSTALL_DOCDIR=share/doc/alfred-tcp", "-DALFRED_SYSTEMD_UNITDIR=/lib/systemd/system"]


def _run(argv, cwd=None, env=None, timeout=3600) -> subprocess.CompletedProcess:
    cp = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, timeout=timeout)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed ({cp.returncode}): {cp.stdout[-1500:]}")
    return cp


def _elf_sizes(path: str) -> dict:
    out = {"bytes": os.path.getsize(path)}
    cp = subprocess.run(["size", path], capture_output=True, text=True, timeout=30)
    if cp.returncode == 0 and len(cp.stdout.splitlines()) > 1:
        text, data, bss = cp.stdout.splitlines()[1].split()[:3]
        out.update(text=int(text), data=int(data), bss=int(bss))
    return out


def build_minsize(cfg) -> tuple[str, float]:
    d = cfg.footprint_build
    t = time.monotonic()
    log(f"footprint: MinSizeRel build in {d} (-j{cfg.footprint_jobs})")
    _run(["nice", "cmake", "-S", ROOT, "-B", d, "-DCMAKE_BUILD_TYPE=MinSizeRel", "-DALFRED_WERROR=ON",
          "-DALFRED_BENCH=OFF"] + INSTALL_LAYOUT)
    _run(["nice", "cmake", "--build", d, "--target", "installables", f"-j{cfg.footprint_jobs}"])
    return d, time.monotonic() - t


def dpkg_installed_size(root: str) -> int:
    """KiB as dpkg-gencontrol counts them: files and symlinks by size rounded
    up to KiB (hard links once), anything else (directories) 1 KiB."""
    kib = 0
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.isdir(p) and not os.path.islink(p):
                kib += 1
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            kib += math.ceil(st.st_size / 1024)
    return kib


def _gzip(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path + ".gz", "wb") as f:
        # -9n: no name, no time stamp
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=f, mtime=0) as g:
            g.write(data)
    os.unlink(path)


def destdir_package(build: str, tmp: str) -> dict:
    """`cmake --install --strip` into a DESTDIR, plus what dh adds and
    compresses, as the package would hold it."""
    root = os.path.join(tmp, "root")
    env = {**os.environ, "DESTDIR": root}
    _run(["cmake", "--install", build, "--strip"], env=env)
    doc = os.path.join(root, "usr/share/doc/alfred-tcp")
    os.makedirs(doc, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "debian/copyright"), os.path.join(doc, "copyright"))
    shutil.copy(os.path.join(ROOT, "debian/README.Debian"), os.path.join(doc, "README.Debian"))
    shutil.copy(os.path.join(ROOT, "debian/changelog"), os.path.join(doc, "changelog.Debian"))
    lint = os.path.join(root, "usr/share/lintian/overrides")
    os.makedirs(lint, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "debian/alfred-tcp.lintian-overrides"), os.path.join(lint, "alfred-tcp"))
    # dh_compress: man pages always, documentation over 4 KiB and changelogs, never copyright
    for dirpath, _, filenames in os.walk(os.path.join(root, "usr/share")):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if name.endswith(".gz") or name == "copyright" or os.path.islink(p):
                continue
            if "/usr/share/man/" in p or (("/usr/share/doc/" in p)
                                          and (os.path.getsize(p) > 4096 or name.startswith("changelog"))):
                _gzip(p)
    files = sorted(os.path.relpath(os.path.join(dp, f), root) for dp, _, fs in os.walk(root) for f in fs)
    return {"installed_kib": dpkg_installed_size(root), "files": files}


def debian_package(tmp: str) -> dict:
    cp = subprocess.run(["dpkg-query", "-W", "-f", "${Installed-Size}\t${Version}\t${db:Status-Abbrev}", "alfred"],
                        capture_output=True, text=True, timeout=30)
    if cp.returncode == 0 and cp.stdout.split("\t")[-1].startswith("ii"):
        size, version, _ = cp.stdout.split("\t")
        return {"installed_kib": int(size), "version": version, "source": "dpkg-query (installed)"}
    debs = sorted(glob.glob("/var/cache/apt/archives/alfred_*.deb"))
    source = "apt's cache"
    if not debs:
        d = os.path.join(tmp, "debian-deb")
        os.makedirs(d, exist_ok=True)
        _run(["apt-get", "download", "alfred"], cwd=d, timeout=300)
        debs = sorted(glob.glob(os.path.join(d, "alfred_*.deb")))
        source = "apt-get download"
    deb = debs[-1]
    f = _run(["dpkg-deb", "-f", deb, "Installed-Size", "Version"]).stdout
    fields = dict(line.split(": ", 1) for line in f.splitlines() if ": " in line)
    return {"installed_kib": int(fields["Installed-Size"]), "version": fields.get("Version"),
            "source": f"{source}: {os.path.basename(deb)}"}


def real_package(cfg, tmp: str) -> dict:
    """The package alfred-tcp, as scripts/package-test.sh builds it."""
    t = time.monotonic()
    src = os.path.join(tmp, "pkg", "src")
    os.makedirs(src)
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, timeout=60, check=True).stdout
    subprocess.run(["tar", "--null", "-T", "-", "-cf", os.path.join(tmp, "pkg", "src.tar")], input=files,
                   cwd=ROOT, check=True, timeout=300)
    _run(["tar", "-xf", os.path.join(tmp, "pkg", "src.tar"), "-C", src])
    log("footprint: dpkg-buildpackage -b (nocheck) of a copy of the tree")
    env = {**os.environ, "DEB_BUILD_OPTIONS": f"nocheck parallel={cfg.footprint_jobs}"}
    _run(["nice", "dpkg-buildpackage", "-b", "-us", "-uc"], cwd=src, env=env)
    deb = sorted(glob.glob(os.path.join(tmp, "pkg", "alfred-tcp_*.deb")))[-1]
    size = int(_run(["dpkg-deb", "-f", deb, "Installed-Size"]).stdout.strip())
    x = os.path.join(tmp, "pkg", "x")
    _run(["dpkg-deb", "-x", deb, x])
    return {"installed_kib": size, "deb": os.path.basename(deb), "deb_bytes": os.path.getsize(deb),
            "alfred": _elf_sizes(os.path.join(x, "usr/sbin/alfred")), "build_s": round(time.monotonic() - t, 1)}


def idle_rss(cfg, variants: list[tuple[str, str]]) -> list[dict]:
    """All daemons at once, each in its own 1-node lab."""
    runs, labs = [], []
    try:
        for name, path in variants:
            for role in ("primary", "secondary"):
                lab = new_lab(1, link="veth")
                labs.append(lab)
                nd = lab.node(1)
                nd.start(path, primary=role == "primary", period=10)
                runs.append({"variant": name, "role": role, "binary": path, "node": nd, "lab": lab})
        log(f"footprint: {len(runs)} idle daemons, RSS after {cfg.footprint_idle:g} s")
        time.sleep(cfg.footprint_idle)
        for r in runs:
            r["lab"].check_daemons()
            m = proc_mem_kb(daemon_pid(r["node"]))
            r.update(rss_kb=m.get("VmRSS"), anon_kb=m.get("RssAnon"), file_kb=m.get("RssFile"),
                     hwm_kb=m.get("VmHWM"))
    finally:
        for lab in labs:
            lab.close()
    for r in runs:
        del r["node"], r["lab"]
    return runs


def run(cfg, bins) -> dict:
    res: dict = {"config": {"build": cfg.footprint_build, "idle_s": cfg.footprint_idle, "deb": cfg.footprint_deb,
                            "binary_target_bytes": BINARY_TARGET, "rss_target_x": RSS_TARGET}}
    tmp = tempfile.mkdtemp(prefix="alfred-bench-footprint-")
    try:
        build, secs = build_minsize(cfg)
        res["build_s"] = round(secs, 1)
        os.makedirs(os.path.join(tmp, "minsizerel"))
        ours = os.path.join(tmp, "minsizerel", "alfred")  # named alfred: daemon_pid() looks for that comm
        shutil.copy2(os.path.join(build, "alfred"), ours)
        _run(DH_STRIP + [ours])
        res["binary"] = {"ours": _elf_sizes(ours), "ours_unstripped": _elf_sizes(os.path.join(build, "alfred")),
                         "debian": _elf_sizes(bins.debian)}
        try:
            res["idle"] = idle_rss(cfg, [("debian", bins.debian), ("ours MinSizeRel", ours), ("ours", bins.ours)])
        except Exception as e:  # noqa: BLE001 - recorded, the other rows stand
            res["idle_error"] = str(e).splitlines()[0][:300]
        pk = {"ours_destdir": destdir_package(build, tmp)}
        try:
            pk["debian"] = debian_package(tmp)
        except Exception as e:  # noqa: BLE001
            pk["debian"] = {"error": str(e).splitlines()[0][:300]}
        if cfg.footprint_deb:
            try:
                pk["ours_deb"] = real_package(cfg, tmp)
            except Exception as e:  # noqa: BLE001
                pk["ours_deb"] = {"error": str(e)[-300:]}
        res["package"] = pk
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    b = res["binary"]
    log(f"footprint: stripped MinSizeRel alfred {b['ours']['bytes']} B, Debian's {b['debian']['bytes']} B")
    return res


# --------------------------------------------------------------- report

def _kb(n):
    return None if n is None else n / 1024.0


def _verdict(ok: bool | None, what: str) -> str:
    return "-" if ok is None else f"{'MET' if ok else 'MISSED'} ({what})"


def text(r: dict, dist: str) -> str:
    c = r["config"]
    out = ["6. FOOTPRINT (issue 10): stripped MinSizeRel alfred (built in "
           f"{os.path.relpath(c['build'], ROOT) if c['build'].startswith(ROOT) else c['build']}, "
           "strip as dh_strip), idle RSS after "
           f"{c['idle_s']:g} s alone on a 1-node lab (-i mesh0 -b none -p 10), installed size (dpkg's count, KiB)",
           dist]
    rows = []
    b = r["binary"]
    ob, db = b["ours"], b["debian"]
    rows.append(["binary size (stripped)", f"{_kb(ob['bytes']):.1f} KiB", f"{_kb(db['bytes']):.1f} KiB",
                 fmt_ratio(ratio(ob["bytes"], db["bytes"])),
                 _verdict(ob["bytes"] <= c["binary_target_bytes"], f"<= {c['binary_target_bytes'] // 1024} KiB"),
                 f"text/data/bss ours {ob.get('text')}/{ob.get('data')}/{ob.get('bss')}, Debian "
                 f"{db.get('text')}/{db.get('data')}/{db.get('bss')}; unstripped ours "
                 f"{_kb(b['ours_unstripped']['bytes']):.0f} KiB"])
    idle = r.get("idle") or []
    for role in ("primary", "secondary"):
        deb = next((x for x in idle if x["variant"] == "debian" and x["role"] == role), None)
        for x in idle:
            if x["role"] != role or x["variant"] == "debian" or not deb:
                continue
            rr = ratio(x["rss_kb"], deb["rss_kb"])
            rows.append([f"idle RSS, {role}, {x['variant']}", f"{fmt(_kb(x['rss_kb']), 2)} MB",
                         f"{fmt(_kb(deb['rss_kb']), 2)} MB", fmt_ratio(rr),
                         _verdict(None if rr is None else rr <= c["rss_target_x"], f"<= {c['rss_target_x']:g}x"),
                         f"anon/file ours {fmt(_kb(x['anon_kb']), 2)}/{fmt(_kb(x['file_kb']), 2)} MB, "
                         f"Debian {fmt(_kb(deb['anon_kb']), 2)}/{fmt(_kb(deb['file_kb']), 2)} MB"])
    if r.get("idle_error"):
        rows.append(["idle RSS", "ERROR " + r["idle_error"][:100]])
    pk = r.get("package", {})
    deb = pk.get("debian", {})
    dk = deb.get("installed_kib")
    od = pk.get("ours_destdir", {})
    rows.append(["installed size, MinSizeRel DESTDIR", f"{od.get('installed_kib')} KiB",
                 f"{dk} KiB" if dk else "ERROR " + deb.get("error", "?")[:60],
                 fmt_ratio(ratio(od.get("installed_kib"), dk)), "(reported)",
                 f"cmake --install --strip + dh's files, gzip as dh_compress; {len(od.get('files', []))} files; "
                 f"Debian's {deb.get('version', '')} from {deb.get('source', '')}"])
    if "ours_deb" in pk:
        x = pk["ours_deb"]
        if "error" in x:
            rows.append(["installed size, alfred-tcp .deb", "ERROR " + x["error"][:100]])
        else:
            rows.append(["installed size, alfred-tcp .deb", f"{x['installed_kib']} KiB", f"{dk} KiB",
                         fmt_ratio(ratio(x["installed_kib"], dk)), "(reported)",
                         f"{x['deb']} ({_kb(x['deb_bytes']):.0f} KiB), Debian's flags; its alfred "
                         f"{_kb(x['alfred']['bytes']):.1f} KiB; built in {x['build_s']:.0f} s"])
    out.append(table(rows, ["row", "ours", "Debian", "ratio", "target", "notes"]))
    return "\n".join(x for x in out if x)


def csv_rows(r: dict):
    """(case, variant, metric, value) rows for report.csv_text."""
    for k in ("ours", "ours_unstripped", "debian"):
        for m, v in r["binary"][k].items():
            yield "binary", k, m, v
    for x in r.get("idle") or []:
        for m in ("rss_kb", "anon_kb", "file_kb", "hwm_kb"):
            yield f"idle_{x['role']}", x["variant"], m, x.get(m)
    for k, x in r.get("package", {}).items():
        for m in ("installed_kib", "deb_bytes", "version", "error"):
            if m in x:
                yield "package", k, m, x[m]
    yield "build", "ours", "build_s", r.get("build_s")
