"""Risk control: one ``decide`` before every money-out action (allow / challenge / deny)."""
