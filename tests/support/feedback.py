"""Feedback reports for tests: RFC 5965's own example, providers' styles, a DSN, builders.

`RFC5965_B1` and `RFC5965_B2` are the two examples of RFC 5965 appendix B,
typed in as the RFC prints them (B.2's original has an empty line after its
Received: field, so its To:, Subject: ... are body text: a quirk of the RFC's
example, kept). `YAHOO_STYLE` and `MICROSOFT_STYLE` are ARF reports in the
form those feedback loops send (Yahoo's complaint feedback loop finds the
sender by the DKIM signature and redacts the recipient, an old "Version: 0.1"
with Received-Date; Microsoft's JMRP attaches the original with its own
X-HmXmrOriginalRecipient), with the test's own names and addresses, not
copies of real reports. `DSN` is an RFC 3464 bounce carrying the original's
headers as text/rfc822-headers.

`ours(queue_id, client_ip)` is the Received: field this gateway writes
(`relay.accept.received`), as a downstream host would keep it in the
original; `arf(original, **fields)` builds an ARF report around an original
message (bytes: its header section, and body if any) with the given
feedback-report fields; `crlf(text)` turns a report typed with LF into wire form.
"""

from __future__ import annotations

from relay.accept.received import received_header


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


RFC5965_B1 = crlf("""\
From: <abusedesk@example.com>
Date: Thu, 8 Mar 2005 17:40:36 EDT
Subject: FW: Earn money
To: <abuse@example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.  For more information
about this format please see http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

Received: from mailserver.example.net
        (mailserver.example.net [192.0.2.1])
        by example.com with ESMTP id M63d4137594e46;
        Thu, 08 Mar 2005 14:00:00 -0400
From: <somespammer@example.net>
To: <Undisclosed Recipients>
Subject: Earn money
MIME-Version: 1.0
Content-type: text/plain
Message-ID: 8787KJKJ3K4J3K4J3K4J3.mail@example.net
Date: Thu, 02 Sep 2004 12:31:03 -0500

Spam Spam Spam
Spam Spam Spam
Spam Spam Spam
Spam Spam Spam
--part1_13d.2e68ed54_boundary--
""")

RFC5965_B2 = crlf("""\
From: <abusedesk@example.com>
Date: Thu, 8 Mar 2005 17:40:36 EDT
Subject: FW: Earn money
To: <abuse@example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.  For more information
about this format please see http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <somespammer@example.net>
Original-Rcpt-To: <user@example.com>
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT
Reporting-MTA: dns; mail.example.com
Source-IP: 192.0.2.1
Authentication-Results: mail.example.com;
               spf=fail smtp.mail=somespammer@example.com
Reported-Domain: example.net
Reported-Uri: http://example.net/earn_money.html
Reported-Uri: mailto:user@example.com
Removal-Recipient: user@example.com

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <somespammer@example.net>
Received: from mailserver.example.net (mailserver.example.net
        [192.0.2.1]) by example.com with ESMTP id M63d4137594e46;
        Thu, 08 Mar 2005 14:00:00 -0400

To: <Undisclosed Recipients>
Subject: Earn money
MIME-Version: 1.0
Content-type: text/plain
Message-ID: 8787KJKJ3K4J3K4J3K4J3.mail@example.net
Date: Thu, 02 Sep 2004 12:31:03 -0500

Spam Spam Spam
Spam Spam Spam
Spam Spam Spam
Spam Spam Spam
--part1_13d.2e68ed54_boundary--
""")

YAHOO_STYLE = crlf("""\
From: "Yahoo! Mail AntiSpam Feedback" <feedback@arf.mail.yahoo.test>
To: fbl@gw.test
Subject: FW: Tender results
Date: Tue, 12 Jan 2027 08:15:02 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
	boundary="----=_Part_9_1234.5678"

------=_Part_9_1234.5678
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message from mta.agency.gov.kz on
Tue, 12 Jan 2027 08:10:41 +0000

------=_Part_9_1234.5678
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 0.1
Original-Mail-From: <bounces+4711@mailer.agency.gov.kz>
Original-Rcpt-To: redacted@yahoo.test
Received-Date: Tue, 12 Jan 2027 08:10:41 +0000
Authentication-Results: mta4012.mail.yahoo.test from=agency.gov.kz;
 domainkeys=neutral (no sig); from=agency.gov.kz; dkim=pass (ok)
Reported-Domain: agency.gov.kz

------=_Part_9_1234.5678
Content-Type: message/rfc822

Received: from 198.51.100.25 (EHLO gw.test) (198.51.100.25)
  by mta4012.mail.yahoo.test with SMTP; Tue, 12 Jan 2027 08:10:41 +0000
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
	d=agency.gov.kz; s=ugem2027; t=1799741441;
	h=From:To:Subject:Date:Message-ID;
	bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
	b=dGVzdA==
From: Tenders <tenders@agency.gov.kz>
To: redacted@yahoo.test
Subject: Tender results
Date: Tue, 12 Jan 2027 13:10:40 +0500
Message-ID: <t-2027-0112@agency.gov.kz>

[body removed]
------=_Part_9_1234.5678--
""")

MICROSOFT_STYLE = """\
From: staff@hotmail.test
To: fbl@gw.test
Subject: complaint about message from 198.51.100.25
Date: Wed, 13 Jan 2027 09:00:00 -0800
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
 boundary="--Boundary-00=_JMRP"

----Boundary-00=_JMRP
Content-Type: text/plain; charset="us-ascii"

This is an email abuse report for an email message received from IP 198.51.100.25.

----Boundary-00=_JMRP
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Hotmail FBL
Version: 1
Original-Mail-From: <news@mdai.gov.kz>
Arrival-Date: Wed, 13 Jan 2027 08:59:12 -0800
Source-IP: 198.51.100.25

----Boundary-00=_JMRP
Content-Type: message/rfc822
Content-Disposition: inline

X-HmXmrOriginalRecipient: <someone@hotmail.test>
X-Reporter-IP: 203.0.113.200
Received: from gw.test ([198.51.100.25]) by mx.hotmail.test with ESMTPS;
 Wed, 13 Jan 2027 08:59:12 -0800
{ours}From: <news@mdai.gov.kz>
To: <someone@hotmail.test>
Subject: Digest
Message-ID: <digest-17@mdai.gov.kz>

Digest text
----Boundary-00=_JMRP--
"""

DSN = crlf("""\
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: fbl@gw.test
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="7A1B2C3D.1799741441/mx.example.org"

--7A1B2C3D.1799741441/mx.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

--7A1B2C3D.1799741441/mx.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Arrival-Date: Tue, 12 Jan 2027 08:10:41 +0000

Final-Recipient: rfc822; nobody@example.org
Original-Recipient: rfc822;nobody@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address rejected

--7A1B2C3D.1799741441/mx.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <clerk@minfin.gov.kz>
From: Clerk <clerk@minfin.gov.kz>
To: nobody@example.org
Subject: Invoice
Message-ID: <inv-1@minfin.gov.kz>

--7A1B2C3D.1799741441/mx.example.org--
""")


def ours(queue_id: str, client_ip: str, helo: str = "mail.mdai.gov.kz") -> str:
    """This gateway's Received: field of a message from `client_ip`, queued as `queue_id`."""
    header = received_header(
        helo=helo,
        client_ip=client_ip,
        hostname="gw.test",
        with_="ESMTPS",
        queue_id=queue_id,
        rcpts=["someone@hotmail.test"],
        when=1_799_830_752.0,
    )
    return header.decode()


def microsoft_style(queue_id: str, client_ip: str) -> bytes:
    """`MICROSOFT_STYLE` with this gateway's Received: of `queue_id` from `client_ip`."""
    return crlf(MICROSOFT_STYLE.replace("{ours}", ours(queue_id, client_ip)))


def arf(original: bytes, feedback_type: str = "abuse", **fields: str) -> bytes:
    """An ARF report about `original` (header section, maybe a body) with these fields
    (`Original_Mail_From="<a@b>"` is Original-Mail-From)."""
    lines = [f"Feedback-Type: {feedback_type}", "User-Agent: Test-FBL/1.0", "Version: 1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in fields.items()]
    head = crlf(
        "From: <fbl@isp.test>\nTo: <fbl@gw.test>\nSubject: complaint\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b0"\n\n'
        "--b0\nContent-Type: text/plain\n\nA complaint.\n\n"
        "--b0\nContent-Type: message/feedback-report\n\n" + "\n".join(lines) + "\n\n"
        "--b0\nContent-Type: message/rfc822\n\n"
    )
    return head + original + b"\r\n--b0--\r\n"
