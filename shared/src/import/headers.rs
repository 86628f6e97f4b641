//! Suggested mapping from header names (R-WIZ-3, R-XLS-8): a dictionary of the names people and
//! exporters use, compared after folding case and dropping punctuation and spaces.

/// (target, names) — names in English, Norwegian, Estonian, Czech and Chinese, and the export
/// formats of Google Contacts, Outlook, HubSpot and Mailchimp.
const DICTIONARY: &[(&str, &[&str])] = &[
    (
        "first_name",
        &[
            "first name",
            "firstname",
            "given name",
            "fornavn",
            "eesnimi",
            "jméno",
            "jmeno",
            "名",
            "名字",
            "联系人",
            "first",
        ],
    ),
    (
        "last_name",
        &[
            "last name",
            "lastname",
            "surname",
            "family name",
            "etternavn",
            "perekonnanimi",
            "příjmení",
            "prijmeni",
            "姓",
            "姓氏",
            "last",
        ],
    ),
    (
        "email",
        &[
            "email",
            "e-mail",
            "email address",
            "e-mail address",
            "e-mail 1 - value",
            "emailaddress",
            "e-postadresse",
            "epost",
            "e-post",
            "e-posti aadress",
            "邮箱",
            "邮箱地址",
            "电子邮件",
        ],
    ),
    (
        "mobile",
        &[
            "mobile",
            "mobile phone",
            "mobile number",
            "cell",
            "cell phone",
            "phone",
            "phone number",
            "phone 1 - value",
            "mobilnummer",
            "mobil",
            "telefon",
            "mobiil",
            "telefoninumber",
            "mobilní telefon",
            "手机",
            "手机号",
            "联系电话",
            "电话",
        ],
    ),
    (
        "company",
        &[
            "company",
            "organization",
            "organisation",
            "company name",
            "organization 1 - name",
            "firma",
            "bedrift",
            "ettevõte",
            "společnost",
            "客户名称",
            "公司",
        ],
    ),
    (
        "address",
        &[
            "address",
            "street",
            "street address",
            "adresse",
            "aadress",
            "adresa",
            "ulice",
            "地址",
        ],
    ),
    (
        "postal_code",
        &[
            "postal code",
            "zip",
            "zip code",
            "postcode",
            "postnummer",
            "postiindeks",
            "psč",
            "psc",
            "邮编",
        ],
    ),
    (
        "city",
        &[
            "city", "town", "poststed", "by", "linn", "město", "mesto", "城市",
        ],
    ),
    (
        "country",
        &[
            "country",
            "country code",
            "land",
            "riik",
            "země",
            "zeme",
            "国家",
        ],
    ),
    (
        "note",
        &[
            "note",
            "notes",
            "comment",
            "comments",
            "merknad",
            "notat",
            "märkus",
            "poznámka",
            "poznamka",
            "备注",
        ],
    ),
];

fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The contact field a header most likely holds.
pub fn suggest(header: &str) -> Option<&'static str> {
    let h = fold(header);
    if h.is_empty() {
        return None;
    }
    DICTIONARY
        .iter()
        .find(|(_, names)| names.iter().any(|n| fold(n) == h))
        .map(|(target, _)| *target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_recognised_in_five_languages_and_export_formats() {
        for (header, field) in [
            ("Fornavn", "first_name"),
            ("E-postadresse", "email"),
            ("Mobilnummer", "mobile"),
            ("Eesnimi", "first_name"),
            ("Perekonnanimi", "last_name"),
            ("Příjmení", "last_name"),
            ("邮箱地址", "email"),
            ("联系电话", "mobile"),
            ("客户名称", "company"),
            ("E-mail 1 - Value", "email"),
            ("Phone 1 - Value", "mobile"),
            ("  EMAIL ", "email"),
        ] {
            assert_eq!(suggest(header), Some(field), "{header}");
        }
        assert_eq!(suggest("Shoe size"), None);
    }
}
