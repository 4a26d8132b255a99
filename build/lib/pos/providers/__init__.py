"""Provider clients: Patasente (cards, float) and PawaCard (electricity)."""
