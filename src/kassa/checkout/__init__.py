"""The hosted checkout page (``/checkout/{payment_intent}``) and ``kassa.js``: card fields
that post straight to the vault, so the card number never reaches the API."""
