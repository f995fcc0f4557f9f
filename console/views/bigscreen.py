from console.pending import pending_page

pending_page("bigscreen", 7)
