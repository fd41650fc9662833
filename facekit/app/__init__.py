"""What the app's pages share: the cached model, pickers, and messages that stop a page."""
