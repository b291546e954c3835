"""``hdys-rt view``: a live web view of a serve's estimates, on 127.0.0.1, needing no desktop.

A ZeroMQ subscriber (:class:`hdys_rt.client.Subscriber`) feeds a standard-library HTTP server:

* ``GET /``: one self-contained page (inline JS drawing on a canvas; nothing is downloaded)
  with scrolling traces of the selected torques, muscle activations, GRF and the end-to-end
  latency, over the last ``window_s`` seconds;
* ``GET /events``: server-sent events: ``event: meta`` (series names, units, groups; sent on
  connect and when the stream's layout changes, with the recent history) then one ``data``
  message per displayed sample ``{"t": s, "v": [..]}`` (at most ``max_hz`` per second);
* ``GET /status.json``: counters (estimates received, samples sent, clients).

With a subject mass, torques are shown in N·m and GRF forces in N (see :mod:`.subject`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

__all__ = ["ViewOptions", "ViewServer", "PAGE"]

DEFAULT_TORQUES = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r", "hip_flexion_l",
                   "knee_angle_l", "ankle_angle_l")
DEFAULT_MUSCLES = ("glmax1_r", "recfem_r", "vaslat_r", "gasmed_r", "soleus_r", "tibant_r")
DEFAULT_GRF = ("r_fy", "l_fy")


@dataclass(frozen=True)
class ViewOptions:
    """What the page shows. Channel names absent from the stream are skipped (logged)."""

    torques: tuple[str, ...] = DEFAULT_TORQUES
    muscles: tuple[str, ...] = DEFAULT_MUSCLES
    grf: tuple[str, ...] = DEFAULT_GRF
    mass_kg: float | None = None    # show torques in N·m and GRF in N
    window_s: float = 10.0          # seconds of history on screen
    max_hz: float = 50.0            # samples per second sent to the page

    def __post_init__(self):
        if not self.window_s > 0:
            raise HdysError(f"window_s must be > 0 s, got {self.window_s}")
        if not self.max_hz > 0:
            raise HdysError(f"max_hz must be > 0, got {self.max_hz}")
        if self.mass_kg is not None and not 20 <= self.mass_kg <= 250:
            raise HdysError(f"mass must be 20..250 kg, got {self.mass_kg}")


class ViewServer:
    """Subscribes to ``endpoint`` and serves the page on ``http://host:port/`` (port 0 = any
    free port; see :attr:`url`). Use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5560", host: str = "127.0.0.1",
                 port: int = 8765, streams=None, options: ViewOptions = ViewOptions()):
        from hdys_rt.client import Subscriber

        self.opt = options
        self.endpoint = endpoint
        self.sub = Subscriber(endpoint, streams=streams)
        try:
            self.httpd = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            self.sub.close()
            raise HdysError(f"cannot serve on {host}:{port}: {exc}") from None
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        self.counters = {"estimates": 0, "samples": 0, "clients": 0}
        self.stream: str | None = None
        self._lock = threading.Lock()
        self._clients: list[queue.Queue] = []
        self._meta: dict | None = None
        self._meta_key = None
        self._select: list[tuple[str, int, float]] = []
        self._history: deque = deque(maxlen=int(options.window_s * options.max_hz) + 10)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0: float | None = None
        self._last_sent = -1e9

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "ViewServer":
        for target, name in ((self.httpd.serve_forever, "view-http"), (self._pump, "view-sub")):
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)
        log.info("view on %s (estimates from %s)", self.url, self.endpoint)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for th in self._threads:
            th.join(2.0)
        self.sub.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- estimates -> samples ----------------------------------------------------------------
    def _layout(self, meta: dict) -> None:
        """Pick the series to show from a stream's metadata."""
        outs = meta["outputs"]
        tq = "torques_rajagopal" if "torques_rajagopal" in outs else next(
            (k for k in outs if reps.is_torque(k)), None)
        m = self.opt.mass_kg
        groups = []  # (title, unit, [(output, index, scale, label)])
        if tq is not None:
            chans = outs[tq]["names"]
            sel = [c for c in self.opt.torques if c in chans] or list(chans[:4])
            unit = "N·m" if m else outs[tq]["unit"]
            groups.append(("Joint torques", unit, [(tq, chans.index(c), m or 1.0, c)
                                                    for c in sel]))
        act = "activations" if "activations" in outs else ("semg" if "semg" in outs else None)
        if act is not None:
            chans = outs[act]["names"]
            sel = [c for c in self.opt.muscles if c in chans]
            if sel:
                groups.append(("Muscle activations" if act == "activations" else "sEMG",
                               outs[act]["unit"], [(act, chans.index(c), 1.0, c) for c in sel]))
        if "grf" in outs:
            chans = outs["grf"]["names"]
            sel = [c for c in self.opt.grf if c in chans]
            if sel:
                groups.append(("Ground reaction force", "N" if m else "BW",
                               [("grf", chans.index(c), (m * reps.G if m and reps.is_force(c) else 1.0), c)
                                for c in sel]))
        thr = meta.get("model", {}).get("novelty_threshold")
        if isinstance(thr, float) and np.isfinite(thr):  # a calibrated model
            groups.append((f"Novelty (flagged above {thr:.3g})", "score",
                           [("__novelty__", 0, 1.0, "novelty")]))
        groups.append(("Latency", "ms", [("__latency__", 0, 1e3, "end-to-end")]))  # last
        self._select = [(o, i, s) for _, _, ss in groups for (o, i, s, _) in ss]
        self._meta = {"stream": meta.get("stream"), "window_s": self.opt.window_s,
                      "groups": [{"title": t, "unit": u, "series": [lab for *_, lab in ss]}
                                 for t, u, ss in groups]}
        self._history.clear()

    def _pump(self) -> None:
        while not self._stop.is_set():
            est = self.sub.recv(0.1)
            if est is None or est.meta is None:
                continue
            self.counters["estimates"] += 1
            key = (est.stream, est.meta.get("meta"))
            with self._lock:
                if key != self._meta_key:
                    self._meta_key = key
                    self.stream = est.stream
                    self._layout(est.meta)
                    self._broadcast(self._meta_event())
            if self._t0 is None:
                self._t0 = est.t_client
            t = est.t_client - self._t0
            if t - self._last_sent < 1.0 / self.opt.max_hz:
                continue
            self._last_sent = t
            vals = []
            for out, i, scale in self._select:
                v = est.latency if out == "__latency__" else est.novelty \
                    if out == "__novelty__" else float(est.outputs[out][i])
                vals.append(round(v * scale, 5) if np.isfinite(v) else None)
            sample = {"t": round(t, 4), "v": vals}
            with self._lock:
                self._history.append(sample)
                self._broadcast("data: " + json.dumps(sample) + "\n\n")
            self.counters["samples"] += 1

    def _meta_event(self) -> str:
        return ("event: meta\ndata: " + json.dumps({**self._meta, "history": list(self._history)})
                + "\n\n")

    def _broadcast(self, msg: str) -> None:
        for q in list(self._clients):
            try:
                q.put_nowait(msg)
            except queue.Full:  # a stalled page loses samples, nobody else does
                pass

    # --- HTTP --------------------------------------------------------------------------------
    def _handler(self):
        view = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # quiet: our logger, debug level
                log.debug("http %s", fmt % args)

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/":
                    self._send(200, "text/html; charset=utf-8", PAGE.encode())
                elif path == "/status.json":
                    body = json.dumps({**view.counters, "stream": view.stream,
                                       "endpoint": view.endpoint}).encode()
                    self._send(200, "application/json", body)
                elif path == "/events":
                    self._events()
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _events(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                q: queue.Queue = queue.Queue(maxsize=2000)
                with view._lock:
                    if view._meta is not None:
                        q.put_nowait(view._meta_event())
                    view._clients.append(q)
                    view.counters["clients"] += 1
                try:
                    self.wfile.write(b"retry: 1000\n\n")
                    while not view._stop.is_set():
                        try:
                            msg = q.get(timeout=0.5)
                        except queue.Empty:
                            msg = ": keep-alive\n\n"
                        self.wfile.write(msg.encode())
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with view._lock:
                        view._clients.remove(q)

        return Handler


PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>hdys-rt view</title>
<style>
 html,body{margin:0;background:#0b0e12;color:#d8dee9;font:13px system-ui,sans-serif}
 #bar{padding:6px 10px;height:20px} #bar b{color:#fff}
 canvas{display:block}
</style></head>
<body><div id="bar"><b>hdys-rt view</b> <span id="status">waiting for estimates...</span></div>
<canvas id="c"></canvas>
<script>
"use strict";
const COLORS=["#ff5050","#3ee07a","#4aa8ff","#ffc93c","#e36bff","#30e0e0","#ff9a3c","#b0ff3c"];
const BG="#111820", GRID="#2a3340";
let meta=null, hist=[], n=0, lastT=0;
const cv=document.getElementById("c"), cx=cv.getContext("2d"), st=document.getElementById("status");
function resize(){cv.width=window.innerWidth;cv.height=Math.max(200,window.innerHeight-34);}
window.addEventListener("resize",resize); resize();
const es=new EventSource("/events");
es.addEventListener("meta",e=>{meta=JSON.parse(e.data);hist=meta.history||[];n=hist.length;if(hist.length)lastT=hist[hist.length-1].t;});
es.onmessage=e=>{const s=JSON.parse(e.data);hist.push(s);n++;lastT=s.t;
  const w=meta?meta.window_s:10; while(hist.length&&hist[0].t<lastT-w-1)hist.shift();};
es.onerror=()=>{st.textContent="disconnected, retrying...";};
function draw(){
  requestAnimationFrame(draw);
  const W=cv.width,H=cv.height; cx.fillStyle="#0b0e12"; cx.fillRect(0,0,W,H);
  if(!meta){return;}
  const gs=meta.groups, ph=H/gs.length, w=meta.window_s, t1=lastT, t0=t1-w;
  let col=0, k=0;
  const lat=hist.length?hist[hist.length-1].v[hist[hist.length-1].v.length-1]:null;
  st.textContent="stream "+meta.stream+"  samples "+n+(lat!=null?"  latency "+lat.toFixed(2)+" ms":"");
  gs.forEach((g,gi)=>{
    const y0=gi*ph+4, h=ph-22, x0=60, pw=W-x0-150;
    cx.fillStyle=BG; cx.fillRect(x0,y0,pw,h);
    let lo=Infinity, hi=-Infinity;
    for(const s of hist){ if(s.t<t0)continue; for(let j=0;j<g.series.length;j++){const v=s.v[k+j];
      if(v!=null){lo=Math.min(lo,v);hi=Math.max(hi,v);}}}
    if(!(hi>lo)){lo=(isFinite(lo)?lo:0)-1;hi=(isFinite(hi)?hi:0)+1;}
    const pad=0.08*(hi-lo); lo-=pad; hi+=pad;
    const Y=v=>y0+h-(v-lo)/(hi-lo)*h, X=t=>x0+(t-t0)/w*pw;
    cx.strokeStyle=GRID; cx.lineWidth=1; cx.beginPath();
    for(let q=0;q<=4;q++){const yy=y0+q*h/4; cx.moveTo(x0,yy); cx.lineTo(x0+pw,yy);} cx.stroke();
    if(lo<0&&hi>0){cx.strokeStyle="#56606e";cx.beginPath();cx.moveTo(x0,Y(0));cx.lineTo(x0+pw,Y(0));cx.stroke();}
    cx.fillStyle="#9aa5b4"; cx.font="11px sans-serif";
    cx.fillText(hi.toPrecision(3),4,y0+10); cx.fillText(lo.toPrecision(3),4,y0+h);
    cx.fillStyle="#d8dee9"; cx.font="12px sans-serif";
    cx.fillText(g.title+" ("+g.unit+")",x0+4,y0+h+14);
    g.series.forEach((name,j)=>{
      const c=COLORS[(col+j)%COLORS.length]; cx.strokeStyle=c; cx.lineWidth=2; cx.beginPath();
      let pen=false;
      for(const s of hist){ if(s.t<t0)continue; const v=s.v[k+j];
        if(v==null){pen=false;continue;} const x=X(s.t), y=Y(v);
        if(pen)cx.lineTo(x,y); else cx.moveTo(x,y); pen=true;}
      cx.stroke();
      const last=hist.length?hist[hist.length-1].v[k+j]:null;
      cx.fillStyle=c; cx.fillText(name+(last!=null?"  "+last.toFixed(2):""),x0+pw+8,y0+14+j*15);
    });
    col+=g.series.length; k+=g.series.length;
  });
}
requestAnimationFrame(draw);
</script></body></html>
"""
