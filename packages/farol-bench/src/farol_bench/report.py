"""A results document as text: every figure, and decode speed beside its physical bound."""


def summary(doc: dict) -> str:
    """One line per figure (median, min, max), then the decode bound lines."""
    rows = [("benchmark", "figure", "median", "min", "max", "unit")]
    for bench in doc["benchmarks"]:
        for name, fig in bench["figures"].items():
            rows.append((bench["name"], name, _num(fig["median"]), _num(fig["min"]),
                         _num(fig["max"]), fig["unit"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w)
                       in enumerate(zip(r, widths, strict=True))).rstrip() for r in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:], *bound_lines(doc)])


def bound_lines(doc: dict) -> list[str]:
    """Decode tokens/s beside bandwidth / weight bytes per token, or why there is no bound."""
    bytes_per_token = doc["model"].get("weight_bytes_per_token")
    bandwidth = doc["device"]["bandwidth_bytes_per_s"]
    out = []
    for bench in doc["benchmarks"]:
        decode = bench["figures"].get("decode_tokens_per_s")
        if decode is None or not bytes_per_token:
            continue
        head = (f"{bench['name']}: {decode['median']:.4g} tokens/s; weights read per token "
                f"{_bytes(bytes_per_token)}")
        if bandwidth:
            bound = bandwidth / bytes_per_token
            out.append(f"{head}; bound {bandwidth / 1e9:.4g} GB/s / {_bytes(bytes_per_token)}"
                       f" = {bound:.4g} tokens/s; decode at {decode['median'] / bound:.1%}"
                       " of the bound")
        else:
            out.append(f"{head}; memory bandwidth of '{doc['device']['name']}' unknown, so no "
                       "bound (pass --bandwidth GB/s)")
    return out


def _bytes(n: int) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"


def _num(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
