"""facekit behind other front doors: the REST service (``service``), video files and face tracks
(``video``, ``track``), the live webcam stream (``live``) and Ray scale-out (``scale``)."""
