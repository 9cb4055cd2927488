"""What each claim reads from its chapter's results file, and how its numbers are stated
(every chapter; the front page).

One function per claim (or group of claims) of :data:`recos_utils.core.claims.CLAIMS`: it
takes the results file a chapter writes (the layouts are documented in
``results.LAYOUTS``) and returns the plain numbers the claim's one rule uses; the
``*show``/``pct``/``ms`` helpers state those numbers for the front page's "This book"
column. The rules themselves live in :mod:`recos_utils.core.claims` and nowhere else.
"""
from __future__ import annotations


def baseline(r):
    b = r["baseline"]
    return {"acc": b["acc_original"], "acc_std": b["std_original"],
            "acc_reversed": b["acc_reversed"], "acc_reversed_std": b["std_reversed"], "n": b["n"]}


def negated(r):
    n_test = r["protocol"]["n_test"]
    return {"neg_acc_original": r["negated"]["acc_original"],
            "neg_acc_reversed": r["negated"]["acc_reversed"],
            "swap_gap_images": round(r["negated"]["max_abs_diff_from_swapped_baseline"] * n_test)}


def paired(key):
    def get(r):
        p = r["paired"][key]
        return {"acc_original": p["acc_original"], "acc_reversed": p["acc_reversed"],
                "baseline_acc": r["baseline"]["acc_original"]}
    return get


def nonlinear(r):
    t = r["ablation_avgpool"]
    return {"relu_acc": t["relu"]["acc_original"], "relu_std": t["relu"]["std_original"],
            "linear_acc": t["identity"]["acc_original"],
            "linear_std": t["identity"]["std_original"], "n": r["baseline"]["n"]}


def trelu(r):
    t, zs = r["ablation"], [0.0] + list(r["protocol"]["trelu_z"])
    rows = [t["relu"]] + [t[f"trelu_{z:.1f}"] for z in zs[1:]]
    return {"z": zs, "acc": [v["acc_original"] for v in rows],
            "train_acc": [v["train_acc_final"] for v in rows], "n": r["baseline"]["n"]}


def kmeans(r):
    i = r["init"]
    return {"kmeans_steps": i["kmeans"]["steps_to_target"], "random_steps": i["random"]["steps_to_target"],
            "kmeans_steps_per_seed": i["kmeans"]["steps_to_target_per_seed"],
            "random_steps_per_seed": i["random"]["steps_to_target_per_seed"],
            "target": i["target_acc"], "n": i["kmeans"]["n_seeds"]}


def almost(r):
    return {"background_acc": r["two_layer"]["background"]["background"]["mean"],
            "clean_acc": r["two_layer"]["clean"]["clean"]["mean"], "n": r["protocol"]["n_seeds"]}


def two_one(r):
    out = {"n": r["protocol"]["n_seeds"]}
    for net, tag in (("two_layer", "two"), ("one_layer", "one")):
        for test, w in (("background", "seen"), ("background_unseen", "unseen")):
            v = r[net]["background"][test]
            out[f"{tag}_{w}"], out[f"{tag}_{w}_std"] = v["mean"], v["std"]
    return out


def saak(r):
    return {"err": r["saak"]["reconstruction_max_abs_err"], "swap": r["saak"]["swap_max_abs_err"]}


def saab(r):
    m = r["saab"]["min_response"]
    return {"min": min(m.values()), "min_by_layer": m}


def clusters(r):
    conv = [k for k in r["layers"] if k.startswith("conv")]
    return {"layers": conv, "weights": r["weights"],
            "ratios": [r["layers"][k]["mean_abs_cos"] / r["layers"][k]["mean_abs_cos_random"]
                       for k in conv]}


def bn_spreads(r):
    b = r["bn_sphere"]
    layers = [k for k in b["protocol"]["layers"] if k != "conv1"]
    return {"layers": layers, "n": b["protocol"]["n_seeds"],
            **{arm: {k: {m: {s: b[arm]["layers"][k][m][s] for s in ("mean", "std", "n")}
                         for m in ("norm_cv", "resultant")} for k in layers}
               for arm in ("plain", "bn")}}


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def ms(n: dict, key: str) -> str:
    s = n.get(key + "_std")
    return pct(n[key]) + (f" ± {pct(s)}" if s is not None and n.get("n", 1) > 1 else "")


def seeds(n: dict) -> str:
    k = n.get("n", 1)
    return f" ({k} seed{'s' if k != 1 else ''})"


def steps(s):
    return "not reached by every seed" if s is None else f"{s:,.0f} steps"


def bn_spreads_show(n):
    return "; ".join(f"{layer}: CV {n['plain'][layer]['norm_cv']['mean']:.2f} → "
                     f"{n['bn'][layer]['norm_cv']['mean']:.2f}, resultant "
                     f"{n['plain'][layer]['resultant']['mean']:.2f} → "
                     f"{n['bn'][layer]['resultant']['mean']:.2f}"
                     for layer in n["layers"]) + seeds(n)


def serves_show(n):
    return (f"original {pct(n['acc_original'])}, reversed {pct(n['acc_reversed'])} "
            f"(baseline {pct(n['baseline_acc'])})")
