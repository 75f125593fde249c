"""clinical-peft: PEFT for clinical NLP."""
