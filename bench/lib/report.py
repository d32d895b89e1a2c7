#!/usr/bin/env python3
"""Turns bench/run.sh's raw records into the results table (markdown), printed and written.

    report.py RAW_TSV META_FILE OUT_MD

RAW_TSV lines (tab-separated; CPU figures in % of one core):
  serve   CASE TOOL SERVER ROUND REQ_S MB_S ERRORS SRV_CPU IDLE_PCT OTHER CLIENT KERNEL
  ingest  CASE TARGET ROUND MB_S SECONDS SRV_CPU IDLE_PCT OTHER CLIENT KERNEL
  mem     SERVER STATE RSS_KIB PSS_KIB TCP_MEM_KIB NOTE
KERNEL: kernel threads (writeback, ksoftirqd, kworkers); OTHER: everything on the machine but the
server, the client and kernel threads. A run with OTHER > 25% is "disturbed" (someone else was
computing): medians use only undisturbed rounds when a contender has any, all rounds otherwise.
META_FILE: key=value lines (date, machine, parameters, warning).
"""
import statistics
import sys
from collections import OrderedDict, defaultdict

DISTURBED = 25.0  # % of one core used by other processes


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def pct(x):
    return "n/a" if x is None else f"{x:,.0f}%"


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def num(s):
    try:
        return float(s)
    except (ValueError, TypeError):
        return None


def clean(rows):
    """Undisturbed rows if there are any, else all; and 'used/total' for the table."""
    quiet = [r for r in rows if r["other"] is not None and r["other"] <= DISTURBED]
    use = quiet or rows
    return use, f"{len(use)}/{len(rows)}" + ("" if quiet or not rows else " (all disturbed)")


def main():
    raw, meta_file, out = sys.argv[1:4]
    meta = OrderedDict()
    for line in open(meta_file):
        if "=" in line:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    serve = defaultdict(lambda: defaultdict(list))   # (case, tool) -> server -> rows
    serve_order = []
    ingest = defaultdict(lambda: defaultdict(list))  # case -> target -> rows
    ingest_order = []
    mem = []
    for line in open(raw):
        f = line.rstrip("\n").split("\t")
        f += [""] * (13 - len(f))
        if f[0] == "serve":
            key = (f[1], f[2])
            if key not in serve_order:
                serve_order.append(key)
            serve[key][f[3]].append(dict(round=f[4], req=num(f[5]), mbs=num(f[6]), err=num(f[7]), cpu=num(f[8]),
                                         idle=num(f[9]), other=num(f[10]), client=num(f[11]), kernel=num(f[12])))
        elif f[0] == "ingest":
            if f[1] not in ingest_order:
                ingest_order.append(f[1])
            ingest[f[1]][f[2]].append(dict(round=f[3], mbs=num(f[4]), sec=num(f[5]), cpu=num(f[6]), idle=num(f[7]),
                                           other=num(f[8]), client=num(f[9]), kernel=num(f[10])))
        elif f[0] == "mem":
            mem.append(dict(server=f[1], state=f[2], rss=num(f[3]), pss=num(f[4]), tcp=num(f[5]), note=f[6]))

    all_rows = [r for k in serve_order for rows in serve[k].values() for r in rows]
    all_rows += [r for c in ingest_order for rows in ingest[c].values() for r in rows]
    disturbed = [r for r in all_rows if r["other"] is not None and r["other"] > DISTURBED]

    md = [f"# stream-hub benchmark results ({meta.get('date', '?')})\n",
          f"`{meta.get('command', 'bench/run.sh')}` — {meta.get('machine', '')}\n",
          meta.get("params", "") + "\n"]
    if disturbed:
        md.append(f"**Note:** {len(disturbed)} of {len(all_rows)} measured runs were disturbed (more than "
                  f"{DISTURBED:.0f}% of a core used by other processes meanwhile); medians use the undisturbed "
                  "rounds where a contender has any (column 'rounds used').\n")
    if meta.get("warning"):
        md.append(f"**Warning:** {meta['warning']}\n")

    md.append("## (a) Serving the original: hub vs nginx\n")
    md.append("| case | client | metric | hub | nginx | hub/nginx | rounds used (hub; nginx) | hub CPU | nginx CPU | client CPU (hub; nginx runs) |")
    md.append("| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for key in serve_order:
        case, tool = key
        h, hn = clean(serve[key].get("hub", []))
        n, nn = clean(serve[key].get("nginx", []))
        field, metric = ("req", "req/s") if "KiB file" in case else ("mbs", "MB/s")
        hm, nm = med([r[field] for r in h]), med([r[field] for r in n])
        errs = sum(r["err"] or 0 for r in serve[key].get("hub", []) + serve[key].get("nginx", []))
        note = f" ({int(errs)} errors)" if errs else ""
        md.append(f"| {case} | {tool} | {metric} | {fmt(hm)} | {fmt(nm)} | {ratio(hm, nm)}{note} | {hn}; {nn} | "
                  f"{pct(med([r['cpu'] for r in h]))} | {pct(med([r['cpu'] for r in n]))} | "
                  f"{pct(med([r['client'] for r in h]))}; {pct(med([r['client'] for r in n]))} |")
    md.append("")
    md.append("Medians over the rounds used. CPU in % of one core (200% = both cores): the server process(es), "
              "including the softirq work the kernel does in their context (loopback TCP); the load generator. "
              "MB = 10^6 bytes (body bytes for getload, body + headers for wrk).\n")

    md.append("## (b) Upload ingest: hub (tus PATCH) vs the machine's loopback + disk ceiling\n")
    md.append("| upload | hub MB/s | ceiling MB/s | hub/ceiling | rounds used (hub; ceiling) | hub s | hub CPU | ceiling CPU | kernel threads (hub; ceiling runs) |")
    md.append("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    refs = []
    for case in ingest_order:
        t = ingest[case]
        if "hub" in t:
            h, hn = clean(t["hub"])
            c, cn = clean(t.get("sink", []))
            hm, cm = med([r["mbs"] for r in h]), med([r["mbs"] for r in c])
            md.append(f"| {case} | {fmt(hm)} | {fmt(cm)} | {ratio(hm, cm)} | {hn}; {cn} | "
                      f"{fmt(med([r['sec'] for r in h]), 2)} | {pct(med([r['cpu'] for r in h]))} | "
                      f"{pct(med([r['cpu'] for r in c]))} | {pct(med([r['kernel'] for r in h]))}; "
                      f"{pct(med([r['kernel'] for r in c]))} |")
        for target, rows in t.items():
            if target not in ("hub", "sink"):
                use, used = clean(rows)
                refs.append((case, target, med([r["mbs"] for r in use]), used))
    md.append("")
    md.append("Ceiling: bench/lib/sink.c — recv 1 MiB (MSG_WAITALL), pwrite, one fdatasync per request, 204; "
              "the same client (bench/lib/upclient.c, sendfile from the page cache) and the same request "
              "pattern as the hub row. Kernel threads: mostly writeback of the dirty pages.\n")
    if refs:
        md.append("References measured in the same run (not ceilings for the hub's durability contract):\n")
        md.append("| reference | MB/s | rounds used |")
        md.append("| --- | ---: | --- |")
        for case, target, m, used in refs:
            md.append(f"| {target}: {case} | {fmt(m)} | {used} |")
        md.append("")

    md.append("## (c) Memory\n")
    md.append("| server | state | VmRSS | Pss | kernel TCP memory | note |")
    md.append("| --- | --- | ---: | ---: | ---: | --- |")
    for m in mem:
        mib = lambda k: "n/a" if m[k] is None else f"{m[k] / 1024:,.1f} MiB"
        md.append(f"| {m['server']} | {m['state']} | {mib('rss')} | {mib('pss')} | {mib('tcp')} | {m['note']} |")
    md.append("")
    md.append("nginx: master + workers summed (VmRSS counts shared pages in every process; Pss splits them). "
              "Kernel TCP memory: /proc/net/sockstat `TCP mem` (whole machine).\n")

    md.append("## Raw rounds\n")
    md.append("| section | case | tool/target | server | round | req/s | MB/s | errors | server CPU | client CPU | kernel threads | other load | machine idle |")
    md.append("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    mark = lambda r: " (disturbed)" if r["other"] is not None and r["other"] > DISTURBED else ""
    for key in serve_order:
        for server, rows in serve[key].items():
            for r in rows:
                md.append(f"| serve | {key[0]} | {key[1]} | {server} | {r['round']} | {fmt(r['req'])} | {fmt(r['mbs'])} | "
                          f"{fmt(r['err'])} | {pct(r['cpu'])} | {pct(r['client'])} | {pct(r['kernel'])} | "
                          f"{pct(r['other'])}{mark(r)} | {pct(r['idle'])} |")
    for case in ingest_order:
        for target, rows in ingest[case].items():
            for r in rows:
                md.append(f"| ingest | {case} | {target} | | {r['round']} | | {fmt(r['mbs'])} | | {pct(r['cpu'])} | "
                          f"{pct(r['client'])} | {pct(r['kernel'])} | {pct(r['other'])}{mark(r)} | {pct(r['idle'])} |")
    md.append("")
    text = "\n".join(md)
    with open(out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
