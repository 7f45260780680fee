#!/usr/bin/env python3
"""Does the LLM write the Any-to-Many Instruction Template WITHOUT grammar constraints?

For each held-out TMM record (text-only inputs) the prompt `[INPUT]{Question}{TaskPrompt}` (BOS added by the
tokenizer) goes through `spider generate` greedily (--temp 0), no grammar, for --max-tokens tokens; the answer is
cut after its first `[END]`. Each answer is written back as a TMM record and checked by `spider data validate --no-decode`
(template grammar, task/group consistency: the template parser's checks), and its group modalities are compared
with the reference answer's (only requested modalities used, and all of them). Prints one JSON summary line.

  scripts/eval-lora-template.py --spider build/bin/spider --data tmm_test.jsonl --n 40 [--lora ADAPTER.gguf]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

GROUP = re.compile(r"<(IMAGE|VIDEO|AUDIO|BOX|MASK)>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spider", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--lora", default="")
    ap.add_argument("--model", default="")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--families", default="t2i,t2a,t2v,t2tmm_smart,t2tmm_specific,multi_item")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--show", type=int, default=3, help="print this many answers")
    ap.add_argument("--out", default="", help="keep the answers (TMM JSON Lines) in this file")
    a = ap.parse_args()
    fams = set(a.families.split(","))
    recs = []
    for line in open(a.data):
        r = json.loads(line)
        if r.get("family") in fams and not r.get("Inputs"):
            recs.append(r)
    # Round-robin over families so a small n covers all of them.
    by_fam = {}
    for r in recs:
        by_fam.setdefault(r["family"], []).append(r)
    picked = []
    i = 0
    while len(picked) < a.n and any(i < len(v) for v in by_fam.values()):
        for f in sorted(by_fam):
            if i < len(by_fam[f]) and len(picked) < a.n:
                picked.append(by_fam[f][i])
        i += 1
    out_recs = []
    n_mod_only = n_mod_exact = 0
    for k, r in enumerate(picked):
        prompt = "[INPUT]" + r["Question"] + r["TaskPrompt"]
        cmd = [a.spider, "generate", "-p", prompt, "-n", str(a.max_tokens), "--temp", "0", "-t", str(a.threads)]
        if a.lora:
            cmd += ["--lora", a.lora]
        if a.model:
            cmd += ["-m", a.model]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            sys.exit(1)
        ans = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout  # generate ends with one newline
        # The answer ends at the first [END] (what the streaming parser does; later text is only warned about).
        if "[END]" in ans:
            ans = ans[:ans.index("[END]") + len("[END]")]
        out_recs.append({"id": r["id"], "family": r["family"], "Question": r["Question"],
                         "TaskPrompt": r["TaskPrompt"], "Answer": ans})
        want = set(GROUP.findall(r["Answer"]))
        got = set(GROUP.findall(ans))
        n_mod_only += int(got <= want and (bool(got) == bool(want)))
        n_mod_exact += int(got == want)
        if k < a.show:
            print(f"--- {r['family']} {r['TaskPrompt']}: {r['Question']}\n{ans}", file=sys.stderr)
    path = a.out or tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False).name
    with open(path, "w") as f:
        for r in out_recs:
            f.write(json.dumps(r) + "\n")
    v = subprocess.run([a.spider, "data", "validate", path, "--no-decode", "--json"], capture_output=True, text=True)
    report = json.loads(v.stdout)
    assert report["records"] == len(out_recs), v.stdout
    bad = {i["line"] for i in report["issues"]}
    if not a.out:
        os.unlink(path)
    n = len(out_recs)
    ok = n - len(bad)
    print(json.dumps({"lora": a.lora or None, "n": n, "well_formed": ok, "well_formed_rate": round(ok / n, 3),
                      "only_requested_modalities": n_mod_only, "exact_modalities": n_mod_exact,
                      "max_tokens": a.max_tokens}))


if __name__ == "__main__":
    main()
