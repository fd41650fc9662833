"""Developer tools: ``facekit bench`` (speed and quality on this machine, ``bench``) beside a peer
package set up and run in its own venv (``peer``)."""
