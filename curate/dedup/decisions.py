"""From each method's clusters to decisions: which row survives a cluster (rows of earlier batches
first, then the keep policy), what every dropped row records (method, cluster, survivor, similarity;
``via_*`` when the row matched was itself dropped), the cluster list, and the kept and dropped frames.

:class:`Decisions` collects them for the local engine, method after method; :func:`resolve_survivors`,
:func:`kept_and_dropped` and :func:`cluster_record` are shared with the Ray engine, so both write the
same format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from curate.dedup import cluster as cl
from curate.dedup.text import content_lengths, display_text
from curate.dedup.types import METHODS, PREVIEW, REASONS, STAGE, Prior
from curate.stage import empty_dropped, mark_dropped

SURVIVOR_KEYS = ("survivor_id", "survivor_source", "survivor_batch")


def source_str(file: Any, line: Any, sheet: Any = None) -> str | None:
    if file is None:
        return None
    s = str(file)
    if sheet:
        s += f"[{sheet}]"
    if line is not None:
        s += f":{line}"
    return s


def source_strings(frame: pl.DataFrame) -> list[str | None]:
    """``file[sheet]:line`` of every row (``None`` without a ``source`` column)."""
    if "source" in frame.columns and frame.height:
        src = frame["source"].struct.unnest()
        return [
            source_str(f, ln, sh) for f, ln, sh in zip(src["file"], src["line"], src["sheet"], strict=True)
        ]
    return [None] * frame.height


def cluster_record(cid: str, method: str, survivor: dict[str, Any], members: list[dict[str, Any]]) -> dict:
    """One entry of the cluster list (``--clusters``, ``--explain``)."""
    return {
        "cluster": cid,
        "method": method,
        "size": len(members),
        "survivor": survivor,
        "min_similarity": min(m["similarity"] for m in members),
        "members": members,
    }


def sort_clusters(clusters: list[dict[str, Any]]) -> None:
    """Method order, then cluster id."""
    clusters.sort(key=lambda c: (METHODS.index(c["method"]), c["cluster"]))


def resolve_survivors(
    drop_info: dict[int, dict[str, Any]],
    matched: dict[int, tuple[str, int]],
    clusters: list[dict[str, Any]],
    describe_new: Callable[[int], dict[str, Any]],
) -> dict[int, tuple[str, int]]:
    """Point every dropped row at a row that is kept in the end (shared by the local and Ray engines).

    ``drop_info[i]`` names the survivor row ``i`` was matched to; ``matched[i]`` is ``("new", j)`` when
    that is row ``j`` of this run, ``("prior", k)`` when it is (already resolved to) kept row ``k`` of an
    index. A new survivor may itself be dropped by a later method: its chain is followed to the row that
    is kept, which becomes ``survivor_*`` while the row matched is kept as ``via_*``. Cluster members get
    their final ``kept`` flag and a cluster whose survivor was dropped later a ``resolved_survivor``.
    Returns, per dropped row, its final survivor (``("new", j)`` or ``("prior", k)``)."""
    final: dict[int, tuple[str, int]] = {}
    fields: dict[int, dict[str, Any]] = {}
    for i in sorted(drop_info):
        j = i
        while matched[j][0] == "new" and matched[j][1] in drop_info:
            j = matched[j][1]
        final[i] = matched[j]
        if j == i:
            continue
        if matched[j][0] == "prior":
            fields[i] = {k: drop_info[j][k] for k in SURVIVOR_KEYS if k in drop_info[j]}
        else:
            d = describe_new(matched[j][1])
            fields[i] = {"survivor_id": d["id"], "survivor_source": d["source"]}
    for i, f in fields.items():
        info = drop_info[i]
        via = {"via_id": info["survivor_id"], "via_source": info["survivor_source"]}
        if "survivor_batch" in info:
            via["via_batch"] = info["survivor_batch"]
        for k in SURVIVOR_KEYS:
            info.pop(k, None)
        info.update(f)
        info.update(via)
    for c in clusters:
        for m in c["members"]:
            if "row" in m:
                m["kept"] = m["row"] not in drop_info
        s_row = c["survivor"].get("row")
        if s_row is not None and s_row in drop_info:
            info = drop_info[s_row]
            c["resolved_survivor"] = {
                "id": info["survivor_id"],
                "source": info["survivor_source"],
                "batch": info.get("survivor_batch"),
            }
    return final


def dropped_frame(
    frame: pl.DataFrame, dropped_idx: np.ndarray, drop_method: dict[int, str], drop_info: dict[int, dict]
) -> pl.DataFrame:
    """The dropped rows with ``drop_*`` and ``dup_*`` columns (shared by the local and Ray engines)."""
    if not len(dropped_idx):
        return empty_dropped(frame)
    dframe = frame[dropped_idx]
    infos = [drop_info[int(i)] for i in dropped_idx]
    dframe = mark_dropped(dframe, STAGE, [REASONS[drop_method[int(i)]] for i in dropped_idx], infos)
    return dframe.with_columns(
        pl.Series("dup_method", [x["method"] for x in infos], dtype=pl.Utf8),
        pl.Series("dup_cluster", [x["cluster"] for x in infos], dtype=pl.Utf8),
        pl.Series("dup_of", [x["survivor_id"] for x in infos], dtype=pl.Utf8),
        pl.Series("dup_of_source", [x["survivor_source"] for x in infos], dtype=pl.Utf8),
        pl.Series("dup_similarity", [x["similarity"] for x in infos], dtype=pl.Float64),
    )


def kept_and_dropped(
    frame: pl.DataFrame, drop_method: dict[int, str], drop_info: dict[int, dict]
) -> tuple[np.ndarray, pl.DataFrame, pl.DataFrame]:
    """(kept mask, kept rows, dropped rows with their details)."""
    n = frame.height
    dropped_idx = np.array(sorted(drop_method), dtype=np.int64)
    kept_mask = np.ones(n, dtype=bool)
    kept_mask[dropped_idx] = False
    kept = frame.filter(pl.Series(kept_mask)) if n else frame
    return kept_mask, kept, dropped_frame(frame, dropped_idx, drop_method, drop_info)


class Nodes:
    """Participants of one method: prior rows first (ids into Prior.rows), then new rows."""

    def __init__(self, prior_idx: np.ndarray, new_idx: np.ndarray):
        self.prior_idx = prior_idx
        self.new_idx = new_idx
        self.p = len(prior_idx)
        self.n = self.p + len(new_idx)


class Decisions:
    """The decisions of one local dedup run, method after method: the rows still taking part
    (``active``), and per dropped row its method, details and the row it was matched to."""

    def __init__(self, frame: pl.DataFrame, raw: pl.Series, config: Any, prior: Prior | None):
        n = frame.height
        self.n = n
        self.raw = raw
        self.prior = prior
        # "longest" means the most content in the row (question and answer), whatever is compared
        lengths = content_lengths(frame, raw, config.fields)
        self.rank_new = cl.policy_key(frame, config.keep, lengths) if n else np.zeros(0)
        self.ids = frame["id"].to_list() if "id" in frame.columns else [str(i) for i in range(n)]
        self.sources = source_strings(frame)
        self.p_kept = prior.rows["kept"].to_numpy() if prior is not None else np.zeros(0, dtype=bool)
        self.drop_method: dict[int, str] = {}
        self.drop_info: dict[int, dict[str, Any]] = {}
        self.matched: dict[int, tuple[str, int]] = {}
        self.clusters: list[dict[str, Any]] = []
        self.active = np.ones(n, dtype=bool)

    def tier_rank(self, nodes: Nodes) -> tuple[np.ndarray, np.ndarray]:
        """(tier, rank): earlier batches first (kept rows before dropped ones, in index order), then
        new rows by the keep policy; ties go to the lower node."""
        tier = np.full(nodes.n, 2, dtype=np.int8)
        rank = np.empty(nodes.n, dtype=np.float64)
        pi = nodes.prior_idx
        tier[: nodes.p] = np.where(self.p_kept[pi], 0, 1)
        rank[: nodes.p] = pi
        rank[nodes.p :] = self.rank_new[nodes.new_idx]
        return tier, rank

    def describe_prior(self, k: int) -> dict[str, Any]:
        pr = self.prior.rows.row(int(k), named=True)
        return {
            "id": pr["id"],
            "source": source_str(pr["file"], pr["line"], pr["sheet"]),
            "batch": pr["batch"],
            "text": pr.get("preview"),
        }

    def describe_new(self, i: int) -> dict[str, Any]:
        return {
            "id": self.ids[i],
            "source": self.sources[i],
            "batch": None,
            "text": display_text(self.raw[i])[:PREVIEW],
            "row": i,
        }

    def describe(self, nodes: Nodes, node: int) -> dict[str, Any]:
        if node < nodes.p:
            return self.describe_prior(int(nodes.prior_idx[node]))
        return self.describe_new(int(nodes.new_idx[node - nodes.p]))

    def settle(
        self,
        method: str,
        nodes: Nodes,
        labels: np.ndarray,
        sim: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> tuple[int, int]:
        """Record the clusters of ``labels`` (over ``nodes``) that lost a new row; returns (clusters,
        rows dropped)."""
        tier, rank = self.tier_rank(nodes)
        surv = cl.survivors(labels, rank, tier)
        new_nodes = np.arange(nodes.p, nodes.n)
        lost = new_nodes[surv[new_nodes] != new_nodes]
        if len(lost) == 0:
            return 0, 0
        # clusters that lost a new row, numbered by survivor order
        lab_lost = np.unique(labels[lost])
        in_cluster = np.flatnonzero(np.isin(labels, lab_lost))
        surv_of_label = dict(zip(labels[in_cluster].tolist(), surv[in_cluster].tolist(), strict=True))
        cluster_no = {lab: k for k, lab in enumerate(sorted(surv_of_label, key=surv_of_label.__getitem__))}
        sims = sim(in_cluster, surv[in_cluster])
        sim_of = dict(zip(in_cluster.tolist(), sims.tolist(), strict=True))
        members_by: dict[int, list[int]] = {}
        for node in in_cluster.tolist():
            members_by.setdefault(int(labels[node]), []).append(node)
        for lab, members in members_by.items():
            self._settle_cluster(
                method, f"{method}-{cluster_no[lab]:06d}", nodes, members, int(surv[members[0]]), sim_of
            )
        return len(members_by), len(lost)

    def _settle_cluster(
        self, method: str, cid: str, nodes: Nodes, members: list[int], s_node: int, sim_of: dict[int, float]
    ) -> None:
        s_desc = self.describe(nodes, s_node)
        resolved = None
        if s_node < nodes.p:
            # an earlier batch's row: if it was dropped there, its own survivor (kept) stands in
            s_prior = int(nodes.prior_idx[s_node])
            k = self.prior.final_survivor(s_prior)
            if k != s_prior:
                resolved = self.describe_prior(k)
            target = ("prior", k)
        else:
            target = ("new", int(nodes.new_idx[s_node - nodes.p]))
        out_members = []
        for node in members:
            d = self.describe(nodes, node)
            d["similarity"] = round(float(sim_of[node]), 4)
            d["kept"] = bool(self.p_kept[nodes.prior_idx[node]]) if node < nodes.p else node == s_node
            out_members.append(d)
            if node >= nodes.p and node != s_node:
                i = d["row"]
                self.drop_method[i] = method
                final = resolved or s_desc
                info = {
                    "method": method,
                    "cluster": cid,
                    "survivor_id": final["id"],
                    "survivor_source": final["source"],
                    "similarity": d["similarity"],
                }
                if final["batch"] is not None:
                    info["survivor_batch"] = final["batch"]
                if resolved is not None:
                    info["via_id"] = s_desc["id"]
                    info["via_source"] = s_desc["source"]
                    info["via_batch"] = s_desc["batch"]
                self.drop_info[i] = info
                self.matched[i] = target
                self.active[i] = False
        cluster = cluster_record(cid, method, s_desc, out_members)
        if resolved is not None:
            cluster["resolved_survivor"] = {k: resolved[k] for k in ("id", "source", "batch")}
        self.clusters.append(cluster)

    def finish(
        self, frame: pl.DataFrame
    ) -> tuple[np.ndarray, pl.DataFrame, pl.DataFrame, np.ndarray, np.ndarray]:
        """Resolve survivor chains and sort the clusters; returns (kept mask, kept rows, dropped rows,
        survivor per row in this batch (-1: none), survivor per row in the index (-1: none))."""
        final = resolve_survivors(self.drop_info, self.matched, self.clusters, self.describe_new)
        survivor_new = np.arange(self.n, dtype=np.int64)
        survivor_prior = np.full(self.n, -1, dtype=np.int64)
        for i, (kind, t) in final.items():
            if kind == "new":
                survivor_new[i] = t
            else:
                survivor_new[i] = -1
                survivor_prior[i] = t
        kept_mask, kept, dframe = kept_and_dropped(frame, self.drop_method, self.drop_info)
        sort_clusters(self.clusters)
        return kept_mask, kept, dframe, survivor_new, survivor_prior
