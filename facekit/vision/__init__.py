"""Pixels to faces: open any image safely (``io``), find every face with MTCNN (``detect``,
``mtcnn_fast``) and crop it the way training crops look (``align``). Knows nothing of heads."""
