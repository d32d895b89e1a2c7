#!/usr/bin/env python3
"""Turns bench/run.sh's raw records into the results table (markdown), printed and written.

    report.py RAW_TSV META_FILE OUT_MD

RAW_TSV lines (tab-separated):
  serve   CASE TOOL SERVER ROUND REQ_S MB_S ERRORS SRV_CPU_PCT IDLE_PCT OTHER_PCT CLIENT_PCT KERNEL_PCT
  ingest  CASE TARGET ROUND MB_S SECONDS SRV_CPU_PCT IDLE_PCT OTHER_PCT CLIENT_PCT KERNEL_PCT
(CPU figures: % of one core; KERNEL: irq + softirq + kernel threads; OTHER: everything else on
the machine but server and client.)
  mem     SERVER STATE RSS_KIB PSS_KIB TCP_MEM_KIB NOTE
META_FILE: key=value lines (date, machine, parameters, notes).
Medians over rounds; ratios are hub / reference of the medians.
"""
import statistics
import sys
from collections import OrderedDict, defaultdict


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def main():
    raw, meta_file, out = sys.argv[1:4]
    meta = OrderedDict()
    for line in open(meta_file):
        if "=" in line:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    serve = defaultdict(lambda: defaultdict(list))   # (case, tool) -> server -> [rows]
    serve_order = []
    ingest = defaultdict(lambda: defaultdict(list))  # case -> target -> [rows]
    ingest_order = []
    mem = []
    for line in open(raw):
        f = line.rstrip("\n").split("\t")
        if f[0] == "serve":
            key = (f[1], f[2])
            if key not in serve_order:
                serve_order.append(key)
            serve[key][f[3]].append(dict(round=f[4], req=num(f[5]), mbs=num(f[6]), err=num(f[7]),
                                         cpu=num(f[8]), idle=num(f[9]), other=num(f[10]),
                                         client=num(f[11]), kernel=num(f[12])))
        elif f[0] == "ingest":
            if f[1] not in ingest_order:
                ingest_order.append(f[1])
            ingest[f[1]][f[2]].append(dict(round=f[3], mbs=num(f[4]), sec=num(f[5]), cpu=num(f[6]),
                                           idle=num(f[7]), other=num(f[8]), client=num(f[9]),
                                           kernel=num(f[10])))
        elif f[0] == "mem":
            mem.append(dict(server=f[1], state=f[2], rss=num(f[3]), pss=num(f[4]), tcp=num(f[5]),
                            note=f[6] if len(f) > 6 else ""))

    md = []
    md.append(f"# stream-hub benchmark results ({meta.get('date', '?')})\n")
    md.append(f"`{meta.get('command', 'bench/run.sh')}` — {meta.get('machine', '')}\n")
    md.append(meta.get("params", "") + "\n")
    others = [r["other"] for k in serve_order for rows in serve[k].values() for r in rows]
    others += [r["other"] for c in ingest_order for rows in ingest[c].values() for r in rows]
    busy = [o for o in others if o is not None and o > 20]
    if busy:
        w = (f"{len(busy)} of {len(others)} measured runs had more than 20% of a core used by other "
             "processes (column 'other load'); those figures are disturbed.")
        meta["warning"] = (meta.get("warning", "") + " " + w).strip()
    if meta.get("warning"):
        md.append(f"**Warning:** {meta['warning']}\n")

    md.append("## (a) Serving the original: hub vs nginx (medians, alternating rounds)\n")
    md.append("| case | client | metric | hub | nginx | hub/nginx | hub CPU | nginx CPU | client CPU (hub / nginx runs) | kernel (hub / nginx runs) | other load |")
    md.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in serve_order:
        case, tool = key
        h, n = serve[key].get("hub", []), serve[key].get("nginx", [])
        small = case.startswith("4 KiB")
        metric = "req/s" if small else "MB/s"
        field = "req" if small else "mbs"
        hm, nm = med([r[field] for r in h]), med([r[field] for r in n])
        errs = sum(r["err"] or 0 for r in h + n)
        note = f" ({int(errs)} errors)" if errs else ""
        md.append(f"| {case} | {tool} | {metric} | {fmt(hm)} | {fmt(nm)} | {ratio(hm, nm)}{note} | "
                  f"{fmt(med([r['cpu'] for r in h]))}% | {fmt(med([r['cpu'] for r in n]))}% | "
                  f"{fmt(med([r['client'] for r in h]))}% / {fmt(med([r['client'] for r in n]))}% | "
                  f"{fmt(med([r['kernel'] for r in h]))}% / {fmt(med([r['kernel'] for r in n]))}% | "
                  f"{fmt(med([r['other'] for r in h + n]))}% |")
    md.append("")
    md.append("CPU: % of one core (200% = both cores), medians: the server process(es); the load generator; "
              "the kernel outside any process (interrupts and softirqs, where loopback TCP is mostly processed, "
              "and kernel threads such as writeback); everything else on the machine (other load: more than "
              "10-20% means the machine was not quiet). "
              "MB = 10^6 bytes (body bytes for the C client, body+headers for wrk).\n")

    md.append("## (b) Upload ingest: hub (tus PATCH) vs the machine's loopback + disk ceiling\n")
    md.append("| upload | hub MB/s | ceiling MB/s | hub/ceiling | hub seconds | hub CPU | ceiling CPU | kernel (hub / ceiling runs) | other load |")
    md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    refs = []
    for case in ingest_order:
        t = ingest[case]
        if "hub" in t:
            hm = med([r["mbs"] for r in t["hub"]])
            cm = med([r["mbs"] for r in t.get("sink", [])])
            md.append(f"| {case} | {fmt(hm)} | {fmt(cm)} | {ratio(hm, cm)} | "
                      f"{fmt(med([r['sec'] for r in t['hub']]), 2)} | {fmt(med([r['cpu'] for r in t['hub']]))}% | "
                      f"{fmt(med([r['cpu'] for r in t.get('sink', [])]))}% | "
                      f"{fmt(med([r['kernel'] for r in t['hub']]))}% / {fmt(med([r['kernel'] for r in t.get('sink', [])]))}% | "
                      f"{fmt(med([r['other'] for r in t['hub'] + t.get('sink', [])]))}% |")
        for target, rows in t.items():
            if target not in ("hub", "sink"):
                refs.append((case, target, med([r["mbs"] for r in rows])))
    md.append("")
    if refs:
        md.append("References in the same run (not ceilings for the hub's durability contract):\n")
        md.append("| reference | MB/s |")
        md.append("| --- | ---: |")
        for case, target, m in refs:
            md.append(f"| {target}: {case} | {fmt(m)} |")
        md.append("")
    md.append("Ceiling: bench/lib/sink.c — recv 1 MiB, pwrite, one fdatasync per request, 204; the same "
              "client (bench/lib/upclient.c, sendfile from the page cache) and the same request pattern "
              "as the hub row.\n")

    md.append("## (c) Memory\n")
    md.append("| server | state | VmRSS | Pss | kernel TCP memory | note |")
    md.append("| --- | --- | ---: | ---: | ---: | --- |")
    for m in mem:
        tcp = "n/a" if m["tcp"] is None else f"{m['tcp'] / 1024:,.1f} MiB"
        mib = lambda k: "n/a" if m[k] is None else f"{m[k] / 1024:,.1f} MiB"
        md.append(f"| {m['server']} | {m['state']} | {mib('rss')} | {mib('pss')} | {tcp} | {m['note']} |")
    md.append("")
    md.append("nginx: master + workers summed (VmRSS counts shared pages once per process; Pss splits "
              "them). Kernel TCP memory: /proc/net/sockstat `TCP mem` (whole machine).\n")

    md.append("## Raw rounds\n")
    md.append("| section | case | tool/target | server | round | req/s | MB/s | errors | server CPU | client CPU | kernel | other load | idle |")
    md.append("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in serve_order:
        for server, rows in serve[key].items():
            for r in rows:
                md.append(f"| serve | {key[0]} | {key[1]} | {server} | {r['round']} | {fmt(r['req'])} | "
                          f"{fmt(r['mbs'])} | {fmt(r['err'])} | {fmt(r['cpu'])}% | {fmt(r['client'])}% | "
                          f"{fmt(r['kernel'])}% | {fmt(r['other'])}% | {fmt(r['idle'])}% |")
    for case in ingest_order:
        for target, rows in ingest[case].items():
            for r in rows:
                md.append(f"| ingest | {case} | {target} | | {r['round']} | | {fmt(r['mbs'])} | | "
                          f"{fmt(r['cpu'])}% | {fmt(r['client'])}% | {fmt(r['kernel'])}% | {fmt(r['other'])}% | "
                          f"{fmt(r['idle'])}% |")
    md.append("")
    text = "\n".join(md)
    with open(out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
