"""Train the 400-25-10 digit classifier: ``python train.py --help`` lists every flag."""

try:
    from digits_torch.cli.train import main
except KeyboardInterrupt:  # Ctrl-C while torch is still being imported: no traceback
    raise SystemExit(130) from None

if __name__ == "__main__":
    main()
