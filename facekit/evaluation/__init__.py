"""How good and how fair a model is: metric functions (``metrics``), evaluating a checkpoint on a
labelled dataset (``evaluate``), reports and model cards (``report``), group breakdowns (``segments``)."""
