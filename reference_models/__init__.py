"""Reference networks that meet each shipped rubric, their training loop and the notebooks made from them."""
