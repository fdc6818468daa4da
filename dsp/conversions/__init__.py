"""issue 12: conversions: signed click ids, the ``/conv`` postback, attribution."""
