from arrears.users.masking import mask_bank_account, mask_email, mask_national_id, mask_phone


def test_id_number_keeps_region_and_last_four() -> None:
    assert mask_national_id("11010519491231002X") == "110105********002X"


def test_phone_keeps_prefix_and_last_four() -> None:
    assert mask_phone("+8613800138000") == "+86 138****8000"


def test_email_keeps_first_letter_and_domain() -> None:
    assert mask_email("zhangsan@example.com") == "z***@example.com"


def test_bank_account_keeps_only_the_last_four_digits() -> None:
    assert mask_bank_account("6222021234567890128") == "**** **** **** 0128"
    # a 10-digit passbook account looks the same: the mask gives away neither length nor bank prefix
    assert mask_bank_account("1234567890") == "**** **** **** 7890"
    assert mask_bank_account("6222 0212 3456 7890 128") == "**** **** **** 0128"
    assert mask_bank_account("123") == "****"
    assert mask_bank_account(None) is None and mask_bank_account("") == ""
