"""The pure identity rules (trustpay.identity.model): passwords, e-mail and phone formats,
lockout arithmetic, session lifetime, log-safe text. Boundaries come from API.md."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from trustpay.errors import AccountLocked, Forbidden, InvalidRequest
from trustpay.identity.model import (
    SESSION_ABSOLUTE,
    SESSION_IDLE,
    Lockout,
    Session,
    User,
    UserKind,
    check_password_strength,
    check_payment_password_format,
    is_code_shaped,
    log_safe,
    mask_phone,
    normalize_email,
    normalize_phone,
    session_alive,
)
from trustpay.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOCK = timedelta(minutes=30)


# ------------------------------------------------------------------ passwords
@pytest.mark.parametrize("pw", ["abcdefghij12", "a" * 11 + "1", "1" * 11 + "a", "密码密码密码密码密码12",
                                "correct horse 42 battery", "x1" * 128])
def test_strong_passwords_pass(pw: str) -> None:
    check_password_strength(pw)


@pytest.mark.parametrize("pw", [
    "abcdefghi12",    # 11 characters
    "",
    "abcdefghijkl",   # letters only
    "123456789012",   # digits only
    "!!!!!!!!!!!!",   # neither
    "            ",
    "x1" * 128 + "a",  # 257 characters: over the cap
])
def test_weak_passwords_are_refused(pw: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        check_password_strength(pw)
    assert (e.value.status, e.value.code, e.value.param) == (400, "weak_password", "password")


def test_length_boundary_is_exactly_12() -> None:
    check_password_strength("abcdefghij12")
    with pytest.raises(InvalidRequest):
        check_password_strength("abcdefghi12")


def test_weak_password_names_the_field_it_came_from() -> None:
    with pytest.raises(InvalidRequest) as e:
        check_password_strength("short1", param="new_password")
    assert e.value.param == "new_password"


# ---------------------------------------------------------------------- e-mail
@pytest.mark.parametrize(("raw", "normal"), [
    ("user@example.com", "user@example.com"),
    ("  User.Name+tag@Example.COM ", "user.name+tag@example.com"),
    ("a@b.co", "a@b.co"),
    ("o'brien@mail.sub.example.org", "o'brien@mail.sub.example.org"),
    ("x_y-z@my-host.example", "x_y-z@my-host.example"),
])
def test_valid_emails_are_normalized(raw: str, normal: str) -> None:
    assert normalize_email(raw) == normal


@pytest.mark.parametrize("raw", [
    "", "plainaddress", "@example.com", "user@", "user@localhost", "user@@example.com",
    "us er@example.com", "user@exa mple.com", "user@-example.com", "user@example-.com",
    "user@example..com", "user@.example.com", "user@example.com.", "user@exam_ple.com",
    "user@example.com\nBcc: x@evil.com", "<user@example.com>", "user@example.com,other@example.com",
])
def test_invalid_emails_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        normalize_email(raw)
    assert (e.value.status, e.value.param) == (400, "email")


def test_email_length_cap_is_254() -> None:
    domain = "@example.com"
    assert len(normalize_email("a" * (254 - len(domain)) + domain)) == 254
    with pytest.raises(InvalidRequest):
        normalize_email("a" * (255 - len(domain)) + domain)


# ------------------------------------------------- payment password and codes
@pytest.mark.parametrize("pw", ["123456", "000000", "999999"])
def test_payment_password_is_six_digits(pw: str) -> None:
    check_payment_password_format(pw)
    assert is_code_shaped(pw)


@pytest.mark.parametrize("pw", ["12345", "1234567", "", "12345a", " 123456", "123456 ", "123456\n",
                                "12 456", "١٢٣٤٥٦", "１２３４５６", "-12345"])
def test_payment_password_that_is_not_exactly_six_ascii_digits_is_refused(pw: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        check_payment_password_format(pw)
    assert e.value.param == "payment_password"
    assert not is_code_shaped(pw)


# ----------------------------------------------------------------------- phone
@pytest.mark.parametrize(("raw", "normal", "masked"), [
    ("13800138021", "13800138021", "138******21"),
    ("+86 138-0013-8021", "+8613800138021", "+861********21"),
    ("(010) 1234.5678", "01012345678", "010******78"),
    ("123456", "123456", "12**56"),
    ("1" * 15, "1" * 15, "111" + "*" * 10 + "11"),
])
def test_phone_normalized_and_masked(raw: str, normal: str, masked: str) -> None:
    assert normalize_phone(raw) == normal
    assert mask_phone(raw) == masked


@pytest.mark.parametrize("raw", ["12345", "1" * 16, "", "138001380ab", "++8613800138021", "86+13800138021"])
def test_bad_phones_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        normalize_phone(raw)
    assert e.value.param == "phone"


# --------------------------------------------------------------------- lockout
def fail(lock: Lockout, now: datetime, times: int = 1, max_attempts: int = 5) -> Lockout:
    for _ in range(times):
        lock = lock.after_failure(now, max_attempts=max_attempts, lock_for=LOCK)
    return lock


def test_four_failures_do_not_lock_the_fifth_does() -> None:
    four = fail(Lockout(), T0, 4)
    assert four == Lockout(4, None) and not four.is_locked(T0)
    four.check(T0)
    fifth_at = T0 + timedelta(minutes=3)
    locked = fail(four, fifth_at)
    assert locked.locked_until == fifth_at + LOCK  # 30 minutes from the fifth failure
    assert locked.failures == 0  # a fresh set of tries once the lock ends


def test_locked_at_29_59_open_at_30_00() -> None:
    locked = fail(Lockout(), T0, 5)
    assert locked.is_locked(T0)
    assert locked.is_locked(T0 + timedelta(minutes=29, seconds=59))
    with pytest.raises(AccountLocked) as e:
        locked.check(T0 + timedelta(minutes=29, seconds=59))
    assert (e.value.status, e.value.code) == (423, "account_locked")
    assert not locked.is_locked(T0 + timedelta(minutes=30))
    locked.check(T0 + timedelta(minutes=30))


def test_failures_while_locked_do_not_extend_the_lock() -> None:
    locked = fail(Lockout(), T0, 5)
    later = fail(locked, T0 + timedelta(minutes=20), 4)
    assert later.locked_until == T0 + LOCK
    assert not later.is_locked(T0 + LOCK)


def test_after_the_lock_a_fresh_five_tries() -> None:
    locked = fail(Lockout(), T0, 5)
    reopened = T0 + LOCK
    again = fail(locked, reopened, 4)
    assert not again.is_locked(reopened)
    relocked = fail(again, reopened)
    assert relocked.locked_until == reopened + LOCK


def test_success_clears_everything() -> None:
    assert Lockout.cleared() == Lockout(0, None) == Lockout()
    assert not Lockout.cleared().is_locked(T0)


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_lock_comes_at_the_configured_attempt(limit: int) -> None:
    almost = fail(Lockout(), T0, limit - 1, max_attempts=limit)
    assert not almost.is_locked(T0)
    assert fail(almost, T0, max_attempts=limit).is_locked(T0)


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("login_max_attempts", 0, False), ("login_max_attempts", 1, True), ("login_max_attempts", 5, True),
    ("login_max_attempts", 10, True), ("login_max_attempts", 11, False),
    ("lockout_minutes", 29, False), ("lockout_minutes", 30, True), ("lockout_minutes", 24 * 60, True),
])
def test_lockout_settings_are_bounded(field: str, value: int, ok: bool) -> None:
    if ok:
        assert getattr(Settings.model_validate({field: value}), field) == value
    else:
        with pytest.raises(ValidationError):
            Settings.model_validate({field: value})


def test_lockout_defaults_are_five_tries_thirty_minutes() -> None:
    fields = Settings.model_fields  # the declared defaults, whatever this shell's TRUSTPAY_* say
    assert (fields["login_max_attempts"].default, fields["lockout_minutes"].default) == (5, 30)


# -------------------------------------------------------------------- sessions
def test_session_lifetimes_are_the_contract() -> None:
    assert timedelta(minutes=15) == SESSION_IDLE
    assert timedelta(hours=12) == SESSION_ABSOLUTE


def alive(now: datetime, last_seen: datetime = T0, revoked: datetime | None = None) -> bool:
    return session_alive(now, last_seen_at=last_seen, expires_at=T0 + SESSION_ABSOLUTE, revoked_at=revoked)


def test_idle_expiry_boundary() -> None:
    assert alive(T0)
    assert alive(T0 + timedelta(minutes=14, seconds=59))
    assert alive(T0 + timedelta(minutes=14, seconds=59, microseconds=999_999))
    assert not alive(T0 + timedelta(minutes=15))
    assert not alive(T0 + timedelta(hours=1))


def test_absolute_expiry_boundary_however_recent_the_last_use() -> None:
    end = T0 + SESSION_ABSOLUTE
    assert alive(end - timedelta(seconds=1), last_seen=end - timedelta(seconds=2))
    assert not alive(end, last_seen=end - timedelta(seconds=1))
    assert not alive(end + timedelta(seconds=1), last_seen=end)


def test_a_revoked_session_is_dead_at_once() -> None:
    assert not alive(T0, revoked=T0)
    assert not alive(T0 + timedelta(seconds=1), last_seen=T0 + timedelta(seconds=1), revoked=T0)


def test_session_alive_method_uses_the_same_rule() -> None:
    s = Session("ses_x", "usr_x", T0, T0, T0 + SESSION_ABSOLUTE, None, "", "")
    assert s.alive(T0 + timedelta(minutes=14, seconds=59))
    assert not s.alive(T0 + timedelta(minutes=15))


# ------------------------------------------------------------ e-mail verified
def test_money_out_needs_a_verified_email() -> None:
    user = User("usr_x", "u@example.com", "U", UserKind.PERSONAL, 0, T0)
    with pytest.raises(Forbidden) as e:
        user.require_email_verified()
    assert (e.value.status, e.value.code) == (403, "email_unverified")
    verified = User("usr_x", "u@example.com", "U", UserKind.PERSONAL, 1, T0, email_verified_at=T0)
    assert verified.email_verified
    verified.require_email_verified()


# -------------------------------------------------------------------- log_safe
@pytest.mark.parametrize(("raw", "safe"), [
    ("curl/8.0", "curl/8.0"),
    ("张三 café", "张三 café"),
    ("a\nb", "a\\x0ab"),
    ("a\r\nb", "a\\x0d\\x0ab"),
    ("tab\there", "tab\\x09here"),
    ("\x1b[2K", "\\x1b[2K"),
    ("\x00", "\\x00"),
    ("\x7f\x85", "\\x7f\\x85"),
    ("x\u2028y\u2029z", "x\\u2028y\\u2029z"),
    ("\u202eevil", "\\u202eevil"),  # right-to-left override (format character)
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("back\\slash", "back\\\\slash"),
    ("\\x0a", "\\\\x0a"),  # a typed escape cannot pass for an escaped newline
])
def test_log_safe_escapes_control_and_format_characters(raw: str, safe: str) -> None:
    assert log_safe(raw) == safe


def test_log_safe_empty_and_limit() -> None:
    assert log_safe(None) == "" and log_safe("") == ""
    assert log_safe("a" * 600) == "a" * 512
    assert log_safe("abcdef", limit=3) == "abc"
    assert log_safe("\n" * 10, limit=8) == "\\x0a\\x0a"


@given(st.text())
def test_log_safe_output_is_always_one_printable_line(text: str) -> None:
    out = log_safe(text, limit=10_000)
    assert len(out.splitlines()) <= 1
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in out)


@given(st.text(max_size=50), st.text(max_size=50))
def test_log_safe_is_injective(a: str, b: str) -> None:
    """Two different inputs never log alike, so an entry cannot be made to pass for another."""
    if a != b:
        assert log_safe(a, limit=10_000) != log_safe(b, limit=10_000)
