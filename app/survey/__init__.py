"""One-click survey answers ("Would you recommend us?", 0-10) and the NPS made from them."""
