// Fill the article list from the JSON endpoint (hrender page without a template).
async function load() {
  const list = document.getElementById("articles");
  const { values } = await (await fetch("/api/articles")).json();
  list.innerHTML = "";
  for (const id of values.ids) {
    const { values: one } = await (await fetch(`/api/articles/${id}`)).json();
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/articles/${id}`;
    link.textContent = one.article.title;
    item.className = "article";
    item.appendChild(link);
    list.appendChild(item);
  }
}
load();
