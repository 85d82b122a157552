"""The public free-mail providers: where citizens have their addresses, not organisations.

A recipient at one of these domains is a private person, whoever the provider;
a recipient at any other domain a connection already mails is someone at an
organisation it deals with (`anomaly.recipients` tells the two apart: a
mailbox in someone else's hands that writes, message after message, to people
it never wrote to at its partner organisations is phishing its way along, while
a state body's mailing reaches citizens). The list holds the providers most
used in Kazakhstan and the largest international ones; a provider missing from
it only makes its citizens look like a partner organisation's staff. Lower-case
domains; nothing here raises.
"""

from __future__ import annotations

FREE_MAIL = frozenset(
    {
        # most used in Kazakhstan and the CIS
        "mail.ru", "bk.ru", "inbox.ru", "list.ru", "internet.ru", "mail.kz", "inbox.kz",
        "yandex.kz", "yandex.ru", "yandex.com", "ya.ru", "rambler.ru", "lenta.ru",
        # international
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me",
        "protonmail.com", "gmx.com", "gmx.net", "gmx.de", "web.de", "zoho.com", "qq.com",
        "163.com", "126.com", "yeah.net", "tutanota.com", "mail.com",
    }
)  # fmt: skip
