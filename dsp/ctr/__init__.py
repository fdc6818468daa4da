"""Click-through-rate model: hashed features, logistic regression, training, live predictor."""
