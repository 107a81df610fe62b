"""Image files in, ex4-style 20 x 20 digits out."""
