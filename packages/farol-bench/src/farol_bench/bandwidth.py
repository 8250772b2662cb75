"""The physical reference for decode speed: weight bytes read per token over memory bandwidth.

Decoding one token reads every weight once (the embedding table only for one row), so a
device cannot decode faster than bandwidth / bytes-per-token. The KV cache and activations
are left out, which makes the bound slightly optimistic for long contexts.
"""

from mlx.utils import tree_flatten

# Peak memory bandwidth in bytes/s from the vendors' specifications. Only names that pin down
# one figure: an M3 Max, for instance, ships with 300 or 400 GB/s and is left out.
KNOWN_BANDWIDTH = {
    "Apple M1": 68.25e9,
    "Apple M1 Pro": 200e9,
    "Apple M1 Max": 400e9,
    "Apple M1 Ultra": 800e9,
    "Apple M2": 100e9,
    "Apple M2 Pro": 200e9,
    "Apple M2 Max": 400e9,
    "Apple M2 Ultra": 800e9,
    "Apple M3": 100e9,
    "Apple M3 Pro": 150e9,
    "Apple M4": 120e9,
    "Apple M4 Pro": 273e9,
    "NVIDIA H100 80GB HBM3": 3.35e12,  # the SXM part
    "NVIDIA H100 PCIe": 2.0e12,
    "NVIDIA H100 NVL": 3.9e12,
    "NVIDIA H200": 4.8e12,
    "NVIDIA A100-SXM4-80GB": 2.039e12,
    "NVIDIA A100-SXM4-40GB": 1.555e12,
    "NVIDIA GeForce RTX 4090": 1.008e12,
}


def known_bandwidth(device_name: str | None) -> float | None:
    """Bytes/s for `device_name`, or None when the table does not know it.

    Names must match whole (ignoring case): "Apple M3 Max" is not an "Apple M3".
    """
    name = (device_name or "").strip().lower()
    return next((v for k, v in KNOWN_BANDWIDTH.items() if k.lower() == name), None)


def weight_bytes_per_token(model) -> int:
    """Bytes of parameters one decode step reads: all of them, but one row of the embedding."""
    params = dict(tree_flatten(model.parameters()))
    total = sum(v.nbytes for v in params.values())
    if _has_separate_head(params):
        embed = [v for k, v in params.items() if ".embed_tokens." in f".{k}"]
        rows = embed[0].shape[0] if embed else 1
        embed_bytes = sum(v.nbytes for v in embed)
        total -= embed_bytes - embed_bytes // rows
    return total


def decode_bound(bytes_per_token: int, bandwidth: float | None) -> float | None:
    """Tokens/s the memory bandwidth allows, or None when the bandwidth is unknown."""
    return bandwidth / bytes_per_token if bandwidth and bytes_per_token else None


def _has_separate_head(params: dict) -> bool:
    # With tied embeddings the table is also the output layer and is read whole every step.
    return any(k.startswith("lm_head.") for k in params)
