from arrears.users.masking import mask_email, mask_national_id, mask_phone


def test_id_number_keeps_region_and_last_four() -> None:
    assert mask_national_id("11010519491231002X") == "110105********002X"


def test_phone_keeps_prefix_and_last_four() -> None:
    assert mask_phone("+8613800138000") == "+86 138****8000"


def test_email_keeps_first_letter_and_domain() -> None:
    assert mask_email("zhangsan@example.com") == "z***@example.com"
