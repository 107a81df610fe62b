"""Using a trained model: loading it from anything the commands take, its card, predict,
evaluate and export."""
