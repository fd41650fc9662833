"""Live: the webcam streamed to the server, every face boxed and labelled as it moves.

A thin page: ``streamlit-webrtc`` carries the frames, ``facekit.serving.live.LiveAnalyzer`` (one per
session, in ``st.session_state["live_analyzer"]``) draws the boxes and runs the model in
the background. The model is its own cached resource, ``facekit.serving.live.live_predictor``
(320 px detection, no flip average: settings for speed that the Predict page's ``Predictor``
cannot share), so the app holds the model twice (one more copy in memory).

STUN/TURN: by default no ICE server is used, which works when the browser reaches the
server directly (localhost, one network). For a remote deployment set the environment
variable ``FACEKIT_ICE_SERVERS`` to a JSON list of ICE servers before ``streamlit run``, e.g.
``FACEKIT_ICE_SERVERS='[{"urls": ["stun:stun.l.google.com:19302"]}]'``, or a TURN server
with ``"username"`` and ``"credential"`` when either side is behind a strict NAT.
"""
from __future__ import annotations

import time

import streamlit as st

from facekit.app import common
from facekit.serving import live
from facekit.evaluation.report import model_licence

st.set_page_config(page_title="Live · facekit", page_icon=":material/videocam:", layout="wide")
common.need("live")  # before the imports it brings: without them the page says which extra to install
import av
from streamlit_webrtc import WebRtcMode, webrtc_streamer

live_predictor = st.cache_resource(show_spinner="Loading the model…")(live.live_predictor)

st.title("Live")
st.info("Frames are analysed on the server in memory and never stored: nothing is written to disk or kept after "
        "the stream stops.", icon=":material/lock:")
st.caption("Each label is a guess with a probability, averaged over the face's last few model runs, and the model "
           "is wrong more often for some groups than for others (see the evaluation page).")

predictor = common.loaded(live_predictor, "The live view cannot start")
st.caption(model_licence(predictor.metadata))
ice_servers = common.loaded(live.ice_servers, "The live view cannot start")
if "live_analyzer" not in st.session_state:
    st.session_state["live_analyzer"] = live.LiveAnalyzer(predictor)
analyzer: live.LiveAnalyzer = st.session_state["live_analyzer"]


def analyse(frame: av.VideoFrame) -> av.VideoFrame:
    """Runs in streamlit-webrtc's video thread for every frame."""
    return av.VideoFrame.from_ndarray(analyzer.process(frame.to_ndarray(format="rgb24")), format="rgb24")


video, side = st.columns([3, 2])
with video:
    context = webrtc_streamer(key="live", mode=WebRtcMode.SENDRECV, rtc_configuration={"iceServers": ice_servers},
                              video_frame_callback=analyse, media_stream_constraints={"video": True, "audio": False})
if not context.state.playing:
    if analyzer.stats().frames:  # a stream ended: the next one starts with no tracks and fresh counters
        analyzer.close()
        st.session_state["live_analyzer"] = live.LiveAnalyzer(predictor)
    side.caption("Press START and allow the camera. Boxes follow each face with a track number; the labels refresh as "
                 "often as the model can run, skipping frames rather than falling behind.")
    st.stop()

status = side.empty()
while context.state.playing:  # the script reruns (and this loop ends) when the stream stops
    stats = analyzer.stats()
    with status.container():
        fps, refreshes = st.columns(2)
        faces, lag = st.columns(2)
        fps.metric("Displayed fps", f"{stats.fps:.1f}")
        refreshes.metric("Model refreshes/s", f"{stats.refreshes_per_s:.1f}")
        faces.metric("Faces found", stats.faces)
        lag.metric("Model run", f"{stats.model_ms:.0f} ms", help="How far the boxes lag behind the video")
        shown = analyzer.overlays()
        st.markdown(f"**{len(shown)} face{'' if len(shown) == 1 else 's'} in view**"
                    + "".join(f"\n- {overlay.label}" for overlay in shown))
        if stats.skipped_faces:
            st.caption(f"{stats.skipped_faces} smaller faces found but not labelled: the live view labels the "
                       f"{live.MAX_FACES} largest.")
        if stats.error:
            st.error(f"The latest model run failed: {stats.error}")
    time.sleep(0.5)
