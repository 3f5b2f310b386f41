// Donation page: a suggested amount fills the amount field (the form works without it).
document.addEventListener("click", (event) => {
  const chip = event.target.closest("[data-amount]");
  if (!chip) return;
  const field = document.getElementById("donation-amount");
  if (field) { field.value = chip.dataset.amount; field.focus(); }
});
