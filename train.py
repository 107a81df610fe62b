"""Train the 400-25-10 digit classifier: ``python train.py --help`` lists every flag."""

from digits_torch.cli import main

if __name__ == "__main__":
    main()
