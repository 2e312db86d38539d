//! What the load generators and the bare baselines share.

/// One of Meta's deliveries: a text message from `from` (digits) to the number `number` (Meta's
/// phone-number id), with Meta's id `wamid`, as the reference describes the webhook.
pub fn delivery(number: &str, wamid: &str, from: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550100","phone_number_id":"{number}"}},"contacts":[{{"profile":{{"name":"Bench User"}},"wa_id":"{from}","user_id":"US.{from}"}}],"messages":[{{"from":"{from}","from_user_id":"US.{from}","id":"{wamid}","timestamp":"1764150000","type":"text","text":{{"body":"What are your opening hours?"}}}}]}},"field":"messages"}}]}}]}}"#
    )
}

/// The sender of the `i`-th delivery when `customers` customers write in turn.
pub fn customer(i: usize, customers: usize) -> String {
    if customers <= 1 {
        "15551234567".to_owned()
    } else {
        format!("1555{:07}", i % customers)
    }
}
