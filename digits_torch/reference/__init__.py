"""The references we match: scikit-learn's MLPClassifier step by step, and Coursera ex4's
weights, cost and gradient check."""
