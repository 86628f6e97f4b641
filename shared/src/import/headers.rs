//! Suggested mapping from header names (R-WIZ-3, R-XLS-8): a dictionary of the names people and
//! exporters use, compared after folding case and dropping punctuation and spaces.

/// (target, names) — names in English, Norwegian, Estonian, Czech and Chinese, and the export
/// formats of Google Contacts, Outlook, HubSpot and Mailchimp.
#[rustfmt::skip]
const DICTIONARY: &[(&str, &[&str])] = &[
    ("first_name", &["first name", "firstname", "given name", "first", "fornavn", "eesnimi", "jméno", "jmeno", "名", "名字", "联系人"]),
    ("last_name", &["last name", "lastname", "surname", "family name", "last", "etternavn", "perekonnanimi", "příjmení", "prijmeni", "姓", "姓氏"]),
    ("email", &["email", "e-mail", "email address", "e-mail address", "e-mail 1 - value", "e-mail 2 - value", "e-postadresse", "epost", "e-post", "e-posti aadress", "邮箱", "邮箱地址", "电子邮件"]),
    ("mobile", &["mobile", "mobile phone", "mobile number", "mobile phone number", "cell", "cell phone", "phone", "phone number", "primary phone", "phone 1 - value", "business phone", "home phone", "mobilnummer", "mobil", "telefon", "mobiil", "telefoninumber", "mobilní telefon", "手机", "手机号", "联系电话", "电话"]),
    ("company", &["company", "company name", "organization", "organisation", "organization 1 - name", "firma", "bedrift", "ettevõte", "společnost", "název klienta", "nazev klienta", "klient", "客户名称", "公司"]),
    ("address", &["address", "street", "street address", "address 1 - street", "business street", "home street", "adresse", "aadress", "adresa", "ulice", "地址"]),
    ("postal_code", &["postal code", "zip", "zip code", "postcode", "address 1 - postal code", "business postal code", "home postal code", "postnummer", "postiindeks", "psč", "psc", "邮编"]),
    ("city", &["city", "town", "address 1 - city", "business city", "home city", "poststed", "by", "linn", "město", "mesto", "城市"]),
    ("country", &["country", "country code", "country/region", "address 1 - country", "business country/region", "home country/region", "land", "riik", "země", "zeme", "国家"]),
    ("external_id", &["external id", "customer code", "customer id", "customer number", "client code", "client id", "kundenummer", "kundenr", "kliendikood", "kliendi kood", "číslo zákazníka", "cislo zakaznika", "客户编号", "客户代码"]),
    ("note", &["note", "notes", "comment", "comments", "merknad", "notat", "märkus", "poznámka", "poznamka", "备注"]),
];

fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Prefixes of contact-person group columns in client-row templates (R-XLS-2), e.g.
/// "Kontaktní osoba 2 - E-mail" or "Contact person 2 Email", compared folded.
const GROUP_PREFIXES: &[&str] = &[
    "kontaktní osoba",
    "kontaktni osoba",
    "contact person",
    "contact",
    "kontaktperson",
    "kontaktisik",
    "osoba",
];

fn dictionary(folded: &str) -> Option<&'static str> {
    DICTIONARY
        .iter()
        .find(|(_, names)| names.iter().any(|n| fold(n) == folded))
        .map(|(target, _)| *target)
}

/// The mapping a header most likely wants: a contact field, or a field of a contact-person
/// group (`email#2`) when the header names one.
pub fn suggest(header: &str) -> Option<String> {
    let h = fold(header);
    if h.is_empty() {
        return None;
    }
    if let Some(field) = dictionary(&h) {
        return Some(field.to_owned());
    }
    GROUP_PREFIXES.iter().find_map(|p| {
        let rest = h.strip_prefix(&fold(p))?;
        let group = rest.chars().next()?.to_digit(10)?;
        let field = dictionary(&rest[1..])?;
        (1..=u32::from(super::mapping::MAX_GROUPS).min(9))
            .contains(&group)
            .then(|| format!("{field}#{group}"))
    })
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
            assert_eq!(suggest(header).as_deref(), Some(field), "{header}");
        }
        assert_eq!(suggest("Shoe size"), None);
    }

    #[test]
    fn r_xls_2_contact_person_group_headers_are_suggested_with_their_group() {
        for (header, want) in [
            ("Kontaktní osoba 2 - E-mail", "email#2"),
            ("Kontaktní osoba 6 - Mobil", "mobile#6"),
            ("Contact person 1 First name", "first_name#1"),
            ("Contact 3 Email", "email#3"),
        ] {
            assert_eq!(suggest(header).as_deref(), Some(want), "{header}");
        }
        assert_eq!(
            suggest("Kontaktní osoba 7 - E-mail"),
            None,
            "RAYNET has 6 groups"
        );
    }

    #[test]
    fn headers_of_outlook_hubspot_mailchimp_and_google_exports_are_recognised() {
        for (header, field) in [
            ("E-mail Address", "email"),
            ("Mobile Phone", "mobile"),
            ("Business Street", "address"),
            ("Business Postal Code", "postal_code"),
            ("Country/Region", "country"),
            ("Mobile Phone Number", "mobile"),
            ("Company Name", "company"),
            ("Email Address", "email"),
            ("Given Name", "first_name"),
            ("Family Name", "last_name"),
            ("Organization 1 - Name", "company"),
            ("Address 1 - City", "city"),
        ] {
            assert_eq!(suggest(header).as_deref(), Some(field), "{header}");
        }
    }
}
