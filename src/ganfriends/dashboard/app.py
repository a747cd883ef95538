"""The dashboard page, run by ``streamlit run`` (see :mod:`ganfriends.dashboard.launch`).

The database URL comes from ``GANFRIENDS_DASHBOARD_DB_URL``. One read-only pool serves every
browser tab; the whole page is a fragment that re-runs every few seconds, so it follows the run
without reloading and without blocking the widgets.
"""

from __future__ import annotations

import io
import logging
import os
from datetime import datetime
from typing import Any

import streamlit as st
from PIL import Image

from ganfriends.classroom.report import ReportRefused, build_report
from ganfriends.dashboard import data
from ganfriends.dashboard.launch import DB_URL_ENV
from ganfriends.db import Database, DatabaseError, DatabaseUnavailable

REFRESH_SECONDS = 5
GRID_MIN_WIDTH = 480  # px: small grids (28x28 images) are enlarged, pixel for pixel
STATUS_MARK = {"Active": "🟢 Active", "Idle": "🟡 Idle", "Offline": "⚪ Offline"}


@st.cache_resource(show_spinner=False)
def _database(url: str) -> Database:
    return data.open_database(url)


@st.cache_data(show_spinner=False, max_entries=512)
def _grid(url: str, run_id: int, version: int) -> bytes | None:
    # A stored grid never changes: fetch each once, enlarged for the page.
    png = data.sample_png(_database(url), run_id, version)
    if png is None:
        return None
    image: Image.Image = Image.open(io.BytesIO(png))
    if image.width < GRID_MIN_WIDTH:
        factor = -(-GRID_MIN_WIDTH // image.width)
        image = image.resize(
            (image.width * factor, image.height * factor), Image.Resampling.NEAREST
        )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _follow(key: str, options: list[Any], newest: Any) -> None:
    """Keep a selector on the newest option unless the reader moved it elsewhere."""
    marker = f"{key}:newest"
    chosen = st.session_state.get(key)
    if chosen is None or chosen == st.session_state.get(marker) or chosen not in options:
        st.session_state[key] = newest
    st.session_state[marker] = newest


def _select_run(runs: list[data.RunChoice]) -> data.RunChoice:
    by_id = {r.run_id: r for r in runs}
    default = next((r.run_id for r in runs if r.latest), runs[0].run_id)
    _follow("run", list(by_id), default)
    run_id = st.selectbox("Run", list(by_id), format_func=lambda i: by_id[i].label, key="run")
    return by_id[int(run_id or default)]


def _header(snap: data.Snapshot, resources: data.Resources) -> None:
    s = snap.status
    cols = st.columns(6)
    per = s.versions_per_step  # an alternating step publishes a D and a G version
    if per == 1:
        cols[0].metric("Version", f"{s.version} / {s.total_updates}")
    else:
        cols[0].metric(
            "Step", f"{s.version // per} / {s.total_updates // per}", f"version {s.version}",
            delta_color="off", delta_arrow="off",
        )  # fmt: skip
    cols[1].metric(
        "Epoch", f"{s.epoch:.2f} / {s.epochs}", f"{snap.epoch_percent:.0f}% of this epoch",
        delta_color="off", delta_arrow="off",
    )  # fmt: skip
    cols[2].metric("Throughput", f"{s.images_per_second:,.0f} img/s")
    cols[3].metric("ETA", _duration(snap.eta_seconds) if s.state == "running" else s.state)
    cols[4].metric("Workers active", f"{s.active_workers} / {len(s.workers)}")
    cols[5].metric("Images trained", f"{s.images_seen:,}")
    st.progress(
        min(1.0, snap.run_percent / 100),
        text=f"{snap.run_percent:.0f}% of the run ({s.state})",
    )
    # One slot whether or not the hint shows: the page keeps the same elements from one refresh
    # to the next (a hint appearing and vanishing would shift everything below it).
    hint = st.empty()
    if s.waiting_workers:
        hint.info(
            f"{s.waiting_workers} active worker(s) wait for work while this version finishes: "
            "more units per update (coordinator --workunits-per-update) keeps them busy",
            icon="⏳",
        )
    left, right = st.columns(2)
    u = s.units
    with left:
        st.markdown(f"**Units of version {s.version}**")
        unit_cols = st.columns(4)
        for col, key in zip(unit_cols, ("pending", "claimed", "expired", "done"), strict=True):
            col.metric(key if key != "expired" else "lease expired", u[key])
    with right:
        workers = f"{resources.workers} active worker{'s' * (resources.workers != 1)}"
        hosts = f"{resources.hosts} machine{'s' * (resources.hosts != 1)}"
        st.markdown(f"**Cluster**: {workers} on {hosts}")
        res_cols = st.columns(4)
        res_cols[0].metric("CPU cores", resources.cpu_cores)
        res_cols[1].metric("RAM", f"{resources.ram_gb:,.0f} GB")
        res_cols[2].metric("GPUs", resources.gpus)
        res_cols[3].metric("VRAM", f"{resources.gpu_vram_gb:,.0f} GB")


def _leaderboard(snap: data.Snapshot) -> None:
    st.subheader("Leaderboard")
    if not snap.status.workers:
        st.info("No worker has joined this run yet.")
        return
    total = snap.credited_images
    rows = [
        {
            "rank": rank,
            "name": w.name,
            "units": f"{w.units} ({w.pending} pending)" if w.pending else str(w.units),
            "images": f"{w.images:,}",
            "share": f"{100 * w.images / total:.1f}%" if total else "-",
            "status": STATUS_MARK.get(w.status, w.status),
            "last seen": w.last_heartbeat,
            "rejected": w.rejected,
            "hardware": w.hardware,
        }
        for rank, w in enumerate(snap.status.workers, start=1)
    ]
    # st.table, not st.dataframe: a plain HTML table (names are text a test or reader can find).
    st.table(rows, hide_index=True)


def _charts(db: Database, run_id: int) -> None:
    history = data.loss_history(db, run_id)
    st.subheader("Losses")
    if not history:
        st.info("No update yet: curves appear after the first one.")
        return
    _history_chart(history, {"G loss": "g_loss", "D loss": "d_loss"}, ["#1f77b4", "#ff7f0e"])
    st.subheader("Discriminator outputs")
    _history_chart(history, {"D(x)": "d_real", "D(G(z))": "d_fake"}, ["#2ca02c", "#d62728"])


def _history_chart(
    history: list[dict[str, Any]], series: dict[str, str], colours: list[str]
) -> None:
    """A line chart against the version of ``series`` (label -> loss_history column)."""
    columns = {label: [r[column] for r in history] for label, column in series.items()}
    st.line_chart(
        {"version": [int(r["version"]) for r in history], **columns},
        x="version", y=list(series), color=[*colours], height=230,
    )  # fmt: skip


def _throughput_and_fid(db: Database, run_id: int) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("Throughput")
        points = data.throughput_history(db, run_id)
        if points:
            # Minutes since the first update: readable for a 2-minute demo and a 3-hour class.
            start = points[0]["time"]
            st.line_chart(
                {
                    "minutes": [(p["time"] - start).total_seconds() / 60 for p in points],
                    "images/s": [p["images_per_second"] for p in points],
                },
                x="minutes", y="images/s",
                height=230,
            )  # fmt: skip
        else:
            st.info("Throughput appears after two updates.")
    with right:
        st.subheader("FID")
        if not data.has_fid():
            st.caption("FID is not recorded by this version of ganfriends.")
            return
        try:
            fid = data.fid_history(db, run_id)
        except DatabaseError as exc:  # the query exists but this database lacks its table
            st.caption(f"FID unavailable: {exc}")
            return
        if not fid:
            st.caption("No FID evaluation yet.")
            return
        st.metric(
            "Latest FID (lower is better)",
            f"{float(fid[-1]['fid']):.2f}",
            f"version {int(fid[-1]['version'])}",
            delta_color="off", delta_arrow="off",
        )  # fmt: skip
        st.line_chart(
            {"version": [int(r["version"]) for r in fid], "FID": [r["fid"] for r in fid]},
            x="version", y="FID", height=200,
        )  # fmt: skip


def _samples(db: Database, url: str, run_id: int) -> None:
    st.subheader("Samples")
    versions = data.sample_versions(db, run_id)
    if not versions:
        st.info("No sample grid yet: the coordinator stores one every --sample-interval updates.")
        return
    key = f"grid-{run_id}"
    _follow(key, versions, versions[-1])
    version = versions[-1]
    if len(versions) > 1:
        version = int(st.select_slider("Grid at version", options=versions, key=key))
    png = _grid(url, run_id, version)
    if png is not None:
        st.image(png, caption=f"version {version} (fixed noise)", width="content")


def _flagged(snap: data.Snapshot) -> None:
    """Students the instructor should look at: quarantined, or with rejections or timed-out
    leases (one line each, as `status` prints them)."""
    for standing in snap.status.flagged:
        # Plain text: a student's role name is theirs to choose within the name rules.
        if standing.quarantined:
            st.error(standing.describe(), icon=None)
        else:
            st.warning(standing.describe(), icon=None)


def _rejections(db: Database, run_id: int) -> None:
    st.subheader("Rejected uploads")
    by_worker = data.rejections_by_worker(db, run_id)
    if not by_worker:
        st.caption("None: every upload so far passed validation.")
        return
    st.table(
        [
            {
                "name": r["name"],
                "rejected": r["rejected"],
                "last": _clock(r["last_at"]),
                "last reason": r["last_reason"],
            }
            for r in by_worker
        ],
        hide_index=True,
    )
    with st.expander("Recent rejections"):
        st.table(
            [
                {**r, "created_at": _clock(r["created_at"])}
                for r in data.recent_rejections(db, run_id)
            ],
            hide_index=True,
        )


def _report_download(db: Database, run_id: int) -> None:
    # The numbers of `ganfriends report --csv`, from the same function. A student's dashboard
    # (their own URL) is refused them by the database: say where they are instead.
    try:
        report = build_report(db, run_id)
    except ReportRefused:
        st.caption("The per-student report is the instructor's (`ganfriends report`).")
        return
    st.download_button(
        "Download the per-student report (CSV)", report.to_csv(),
        file_name=f"ganfriends-run-{run_id}-report.csv", mime="text/csv", key=f"report-{run_id}",
    )  # fmt: skip


def _clock(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@st.fragment(run_every=REFRESH_SECONDS)
def _page(url: str) -> None:
    db = _database(url)
    try:
        runs = data.list_runs(db)
        if not runs:
            st.info("No run in this database yet: start one with `ganfriends coordinator`.")
            return
        run = _select_run(runs)
        snap = data.snapshot(db, run.run_id)
        if snap is None:  # deleted between the two queries
            return
        _header(snap, data.resources(db, run.run_id))
        _flagged(snap)
        left, right = st.columns([3, 2])
        with left:
            _leaderboard(snap)
            _charts(db, run.run_id)
        with right:
            _samples(db, url, run.run_id)
        _throughput_and_fid(db, run.run_id)
        _rejections(db, run.run_id)
        _report_download(db, run.run_id)
    except DatabaseUnavailable as exc:
        st.warning(f"{exc}. Retrying every {REFRESH_SECONDS} s.")
    except DatabaseError as exc:  # e.g. a schema older than this ganfriends: say what to do
        st.error(f"{exc}. Is the schema up to date? (`ganfriends init-db` migrates it)")
    st.caption(f"Updated {datetime.now():%H:%M:%S}; refreshes every {REFRESH_SECONDS} s.")


def main() -> None:
    """Render the page (Streamlit runs this script on each visit)."""
    st.set_page_config(page_title="ganfriends", page_icon="🎨", layout="wide")
    # As in the CLI: the page says "database unreachable" itself; the pool's per-connection
    # warnings would only flood the server's log while the database is down.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    url = os.environ.get(DB_URL_ENV)
    if not url:
        st.error(
            f"No database: start the page with `ganfriends dashboard --db URL` ({DB_URL_ENV})."
        )
        st.stop()
        return
    st.title("ganfriends: the class run")
    st.caption(f"Database {data.safe_location(url)} (read-only)")
    _page(url)


if __name__ == "__main__":
    main()
