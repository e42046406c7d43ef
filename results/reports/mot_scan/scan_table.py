# Prints the mot_scan report's table of every config tried: one row per (sweep, run).
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("""select s.name, sr.name, r.run_id, r.config_json, r.status
  from sweep_runs sr join sweeps s using(sweep_id) join runs r using(run_id)
  order by s.sweep_id, sr.position""").fetchall()
def series(run_id, key):
    return db.execute("select step, value from metrics where run_id=? and key=? order by step",
                      (run_id, key)).fetchall()
out = []
seen = set()
for sweep, name, run_id, cfg, status in rows:
    c = json.loads(cfg)
    f = c["ffn"]; m = c["model"]; t = c["train"]
    typ = f["type"]
    E = f.get("n_experts"); g = f.get("group_size")
    fexp = f["d_ff"] * g // E if typ == "mot" else None
    ev = dict(series(run_id, "eval/loss"))
    ms = [v for _, v in series(run_id, "time/step_ms")]
    out.append(dict(stage=sweep.replace("mot_scan_", ""), name=name.replace(" seed=0", ""),
        reused=run_id in seen, typ=typ, d=m["d_model"], seq=m["seq_len"],
        shape=(f"E {E}, g {g}, f {fexp}" if typ == "mot" else f"d_ff {f['d_ff']}"),
        init=m.get("init", "gpt2"), lr=t["lr"], bf16=bool(t.get("autocast_cpu", False)),
        l200=ev.get(200), final=ev.get(max(ev)) if ev else None,
        ms=sum(ms) / len(ms) if ms else None))
    seen.add(run_id)
best_dense = {}
for r in out:
    if r["typ"] == "dense" and not r["bf16"]:
        k = (r["d"], r["seq"])
        best_dense[k] = min(best_dense.get(k, 9), r["final"])
print("| stage | run | type | d | seq | FFN | init | lr | precision | eval loss @200 | final eval loss @400 | ms/step | MoT - best dense at this d, seq |")
print("|---|---|---|---:|---:|---|---|---:|---|---:|---:|---:|---:|")
for r in out:
    gap = ""
    if r["typ"] == "mot" and (r["d"], r["seq"]) in best_dense:
        gap = f"{r['final'] - best_dense[(r['d'], r['seq'])]:+.4f}"
    name = r["name"] + (" (stage 1's run, reused)" if r["reused"] else "")
    print(f"| {r['stage']} | {name} | {r['typ']} | {r['d']} | {r['seq']} | {r['shape']} | {r['init']} | {r['lr']:g} | {'bf16 (autocast_cpu)' if r['bf16'] else 'float32'} | {r['l200']:.4f} | {r['final']:.4f} | {r['ms']:.0f} | {gap} |")
